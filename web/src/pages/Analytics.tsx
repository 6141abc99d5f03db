import { useMemo, useState } from 'preact/hooks';
import { api, ApiError, listOf, type Analytics, type RequestRow } from '../lib/api';
import { analyticsFromRows, filterRows, type HistoryFilter, type Range } from '../lib/analytics';
import { downloadText, toCsv, type CsvColumn } from '../lib/csv';
import { formatCompact, formatDateTime, formatDuration, formatInt, formatPercent, toMs } from '../lib/format';
import { Bars, Empty, ErrorNote, Kpi, Loading, LoadState, PageHeader, Section, useAsync } from '../components/ui';

const CSV_COLUMNS: CsvColumn<RequestRow>[] = [
  { header: 'id', value: (r) => r.id },
  { header: 'time', value: (r) => new Date(toMs(r.created_at) ?? 0).toISOString() },
  { header: 'endpoint', value: (r) => r.endpoint },
  { header: 'requested_model', value: (r) => r.requested_model },
  { header: 'provider', value: (r) => r.platform },
  { header: 'model', value: (r) => r.model },
  { header: 'provider_key_id', value: (r) => r.provider_key_id },
  { header: 'status', value: (r) => r.status },
  { header: 'http_status', value: (r) => r.http_status },
  { header: 'error_class', value: (r) => r.error_class },
  { header: 'error_message', value: (r) => r.error_message },
  { header: 'stream', value: (r) => r.stream },
  { header: 'attempts', value: (r) => r.attempts },
  { header: 'input_tokens', value: (r) => r.input_tokens },
  { header: 'output_tokens', value: (r) => r.output_tokens },
  { header: 'latency_ms', value: (r) => r.latency_ms },
  { header: 'ttfb_ms', value: (r) => r.ttfb_ms },
];

export function AnalyticsPage() {
  const [range, setRange] = useState<Range>('24h');
  const history = useAsync((signal) => api<unknown>('GET', '/api/requests?limit=500', undefined, { signal }).then((b) => listOf<RequestRow>(b)), []);
  const summary = useAsync(
    (signal) =>
      api<Analytics>('GET', `/api/analytics?range=${range}`, undefined, { signal }).catch((e) => {
        if (e instanceof ApiError && e.unavailable) return null; // computed from the history below
        throw e;
      }),
    [range],
  );
  const [filter, setFilter] = useState<HistoryFilter>({ status: '', text: '' });

  const fallback = summary.data === null;
  const data: Analytics | undefined = useMemo(() => {
    if (summary.data) return summary.data;
    if (fallback && history.data) return analyticsFromRows(history.data, range);
    return undefined;
  }, [summary.data, fallback, history.data, range]);

  const rows = useMemo(() => filterRows(history.data ?? [], filter), [history.data, filter]);

  return (
    <div class="page">
      <PageHeader title="Analytics">
        <div class="segmented" role="group" aria-label="Time range">
          {(['24h', '7d', '30d'] as Range[]).map((r) => (
            <button key={r} type="button" class={`btn btn-small ${range === r ? 'active' : ''}`} aria-pressed={range === r} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
      </PageHeader>
      {fallback && (
        <p class="hint">
          This server has no <code>/api/analytics</code> yet: the figures below are computed in the browser from the last{' '}
          {formatInt(history.data?.length ?? 0)} requests of the history.
        </p>
      )}
      <ErrorNote error={summary.error} title="Could not load analytics" />
      {!data && !summary.error && <Loading />}
      {data && (
        <>
          <div class="kpis">
            <Kpi label="Requests" value={formatInt(data.totals.requests)} />
            <Kpi label="Success rate" value={data.totals.requests ? formatPercent(data.totals.success_rate) : '—'} />
            <Kpi label="Errors" value={formatInt(data.totals.errors)} tone={data.totals.errors > 0 ? 'bad' : undefined} />
            <Kpi label="Tokens in / out" value={`${formatCompact(data.totals.tokens_in)} / ${formatCompact(data.totals.tokens_out)}`} />
            <Kpi label="Avg latency" value={data.totals.requests ? formatDuration(data.totals.avg_latency_ms) : '—'} />
            <Kpi label="p95 latency" value={data.totals.requests ? formatDuration(data.totals.p95_latency_ms) : '—'} />
          </div>
          <Section title="Requests over time" id="series-title">
            {data.totals.requests === 0 ? (
              <Empty title={`No requests in the last ${range}`}>Send one from the playground or any OpenAI client with a gateway key.</Empty>
            ) : (
              <Bars label="Requests over time" data={data.series.map((s) => ({ start: s.bucket_start_ms, total: s.requests, errors: s.errors }))} />
            )}
          </Section>
          {data.totals.requests > 0 && (
            <div class="stack">
              <Section title="By provider" id="byprov-title">
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Provider</th>
                        <th scope="col" class="num">
                          Requests
                        </th>
                        <th scope="col" class="num">
                          Errors
                        </th>
                        <th scope="col" class="num">
                          Avg latency
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {data.by_provider.map((p) => (
                        <tr key={p.provider}>
                          <td>{p.provider}</td>
                          <td class="num">{formatInt(p.requests)}</td>
                          <td class="num">{formatInt(p.errors)}</td>
                          <td class="num">{formatDuration(p.avg_latency_ms)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </Section>
              <Section title="By model" id="bymodel-title">
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Model</th>
                        <th scope="col">Provider</th>
                        <th scope="col" class="num">
                          Requests
                        </th>
                        <th scope="col" class="num">
                          Errors
                        </th>
                        <th scope="col" class="num">
                          Latency
                        </th>
                        <th scope="col" class="num">
                          Tokens in/out
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {data.by_model.map((m) => (
                        <tr key={`${m.model}/${m.provider}`}>
                          <td class="mono">{m.model}</td>
                          <td>{m.provider}</td>
                          <td class="num">{formatInt(m.requests)}</td>
                          <td class="num">{formatInt(m.errors)}</td>
                          <td class="num">{formatDuration(m.avg_latency_ms)}</td>
                          <td class="num">
                            {formatCompact(m.tokens_in)} / {formatCompact(m.tokens_out)}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </Section>
            </div>
          )}
        </>
      )}

      <Section
        title="Request history"
        id="history-title"
        actions={
          <>
            <button type="button" class="btn btn-small" onClick={() => void history.reload()} disabled={history.loading}>
              Refresh
            </button>
            <button
              type="button"
              class="btn btn-small"
              disabled={rows.length === 0}
              onClick={() => downloadText(`freellmapi-requests-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.csv`, toCsv(CSV_COLUMNS, rows))}
            >
              Export CSV ({formatInt(rows.length)})
            </button>
          </>
        }
      >
        <div class="filters">
          <div class="field">
            <label for="hist-status">Status</label>
            <select id="hist-status" class="input input-small" value={filter.status} onChange={(e) => setFilter({ ...filter, status: e.currentTarget.value as HistoryFilter['status'] })}>
              <option value="">All</option>
              <option value="success">Success</option>
              <option value="error">Error</option>
              <option value="canceled">Canceled</option>
            </select>
          </div>
          <div class="field grow">
            <label for="hist-q">Search</label>
            <input id="hist-q" type="search" class="input input-small" placeholder="model, provider, error, request id" value={filter.text} onInput={(e) => setFilter({ ...filter, text: e.currentTarget.value })} />
          </div>
        </div>
        <LoadState a={history} what="Request history" />
        {history.data && history.data.length === 0 && <Empty title="No requests yet">Every request through the gateway is recorded here.</Empty>}
        {history.data && history.data.length > 0 && rows.length === 0 && <Empty title="No request matches these filters" />}
        {rows.length > 0 && (
          <div class="table-wrap">
            <table class="responsive-table" data-testid="history-table">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Requested</th>
                  <th scope="col">Served by</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="num">
                    Attempts
                  </th>
                  <th scope="col" class="num">
                    Latency
                  </th>
                  <th scope="col" class="num">
                    Tokens in/out
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.slice(0, 200).map((r) => (
                  <tr key={r.id}>
                    <td data-label="Time">{formatDateTime(toMs(r.created_at))}</td>
                    <td data-label="Requested" class="mono">
                      {r.requested_model}
                    </td>
                    <td data-label="Served by">
                      {r.platform ? (
                        <span>
                          {r.platform} <span class="mono muted">{r.model}</span>
                        </span>
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                    <td data-label="Status">
                      <div>
                        <span class={`pill pill-${r.status === 'success' ? 'ok' : r.status === 'canceled' ? 'warn' : 'bad'}`}>
                          {r.status} {r.http_status}
                        </span>
                        {r.error_message && (
                          <div class="muted small" title={r.error_message}>
                            {r.error_class}: {r.error_message.slice(0, 120)}
                          </div>
                        )}
                      </div>
                    </td>
                    <td data-label="Attempts" class="num">
                      {r.attempts}
                    </td>
                    <td data-label="Latency" class="num">
                      {formatDuration(r.latency_ms)}
                    </td>
                    <td data-label="Tokens" class="num">
                      {formatInt(r.input_tokens)} / {formatInt(r.output_tokens)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {rows.length > 200 && <p class="hint">Showing the first 200 of {formatInt(rows.length)} rows; the CSV export has them all.</p>}
          </div>
        )}
      </Section>
    </div>
  );
}
