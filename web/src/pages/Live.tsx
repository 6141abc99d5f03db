import { api, listOf, type ProviderKey } from '../lib/api';
import { formatCompact, formatDuration, formatInt, formatPercent, formatTime, formatUntil } from '../lib/format';
import { coolingOf, keyState } from '../lib/keystate';
import { queuedWords, successRate, type LiveKey } from '../lib/live';
import { linkClick } from '../lib/router';
import { live, useLive } from '../lib/ws';
import { useEffect, useMemo } from 'preact/hooks';
import { Empty, Gauge, Kpi, PageHeader, Section, StatusDot, useAsync, useNow } from '../components/ui';

export function LivePage() {
  const { state, conn } = useLive();
  const inFlight = Object.values(state.inFlight).sort((a, b) => a.started_at_ms - b.started_at_ms);
  // Fast while requests run (elapsed timers), else once a second (cooldown countdowns).
  const now = useNow(inFlight.length > 0 ? 250 : 1000);
  const keys = useAsync((signal) => api<unknown>('GET', '/api/keys', undefined, { signal }).then((b) => listOf<ProviderKey>(b)), []);
  // Cooldowns come as `remaining_ms` at the time the list was loaded.
  const loadedAt = useMemo(() => Date.now(), [keys.data]);
  const stateOf = (k: LiveKey) => {
    const row = keys.data?.find((x) => x.id === k.id);
    return row
      ? keyState({ enabled: row.enabled, status: row.status, status_reason: row.status_reason, live_status: row.live_status, cooldowns: coolingOf(row.cooldowns, loadedAt), live: k }, now)
      : keyState({ enabled: true, live: k }, now);
  };
  const keyName = (id?: string) => {
    if (!id) return '';
    const k = keys.data?.find((x) => x.id === id);
    return k ? k.label : (state.keys[id]?.label ?? id.slice(0, 8));
  };
  const rate = successRate(state.totals);
  // Keys may have changed since the socket opened: ask for a fresh snapshot when the page is shown.
  useEffect(() => {
    if (conn === 'connected') live.resync();
  }, [conn === 'connected']);
  const liveKeys: LiveKey[] = Object.values(state.keys);

  return (
    <div class="page">
      <PageHeader title="Live">
        <button type="button" class="btn btn-small" onClick={() => live.resync()} disabled={conn !== 'connected'}>
          Resync
        </button>
      </PageHeader>
      {conn !== 'connected' && (
        <div class="note note-warn" role="status">
          {conn === 'reconnecting'
            ? 'Live updates are disconnected; reconnecting… The numbers below may be stale.'
            : 'Connecting to live updates…'}
        </div>
      )}

      <div class="kpis" data-testid="live-kpis">
        <Kpi label="Requests" value={formatInt(state.totals.requests)} sub={`${formatInt(state.session.requests)} this session`} />
        <Kpi label="Success rate" value={formatPercent(rate)} tone={rate !== null && rate < 0.9 ? 'bad' : undefined} />
        <Kpi label="Errors" value={formatInt(state.totals.errors)} tone={state.totals.errors > 0 ? 'bad' : undefined} />
        <Kpi label="In flight" value={formatInt(inFlight.length)} sub={state.queueDepth ? `${formatInt(state.queueDepth)} queued` : undefined} />
        <Kpi label="Tokens in" value={formatCompact(state.totals.tokens_in)} sub={`+${formatCompact(state.session.tokens_in)} this session`} />
        <Kpi label="Tokens out" value={formatCompact(state.totals.tokens_out)} sub={`+${formatCompact(state.session.tokens_out)} this session`} />
      </div>

      <Section title={`In flight (${inFlight.length})`} id="inflight-title">
        {inFlight.length === 0 ? (
          <Empty title="No requests in flight">
            Requests appear here the moment they arrive, with the provider being tried and a token counter that grows while
            the answer streams. Send one from the{' '}
            <a href="/playground" onClick={linkClick}>
              playground
            </a>
            .
          </Empty>
        ) : (
          <div class="table-wrap">
            <table class="responsive-table" data-testid="inflight-table">
              <thead>
                <tr>
                  <th scope="col">Requested</th>
                  <th scope="col">Provider / model</th>
                  <th scope="col">Proxy</th>
                  <th scope="col" class="num">
                    In
                  </th>
                  <th scope="col" class="num">
                    Out
                  </th>
                  <th scope="col" class="num">
                    Elapsed
                  </th>
                </tr>
              </thead>
              <tbody>
                {inFlight.map((r) => (
                  <tr key={r.req_id}>
                    <td data-label="Requested">
                      <span>
                        <span class="mono">{r.requested_model}</span>
                        {r.stream && <span class="tag tag-muted">stream</span>}
                      </span>
                    </td>
                    <td data-label="Provider / model">
                      {r.provider ? (
                        <span>
                          <span class="provider">{r.provider}</span> <span class="mono">{r.model}</span>
                          {r.attempt > 1 && <span class="tag tag-warn">attempt {r.attempt}</span>}
                        </span>
                      ) : r.queued_until_ms != null ? (
                        <span class="muted" data-testid="queued">
                          {queuedWords(r.queued_until_ms, now)}
                        </span>
                      ) : (
                        <span class="muted">routing…</span>
                      )}
                    </td>
                    <td data-label="Proxy">{r.proxy ?? <span class="muted">direct</span>}</td>
                    <td data-label="In" class="num">
                      {formatInt(r.input_tokens)}
                    </td>
                    <td data-label="Out" class="num tokens-growing">
                      {formatInt(r.output_tokens)}
                    </td>
                    <td data-label="Elapsed" class="num">
                      {formatDuration(now - r.started_at_ms)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>

      <div class="two-col">
        <Section title="Routing events" id="events-title">
          {state.events.length === 0 ? (
            <p class="muted">Attempts, failures and cooldowns will be listed here as they happen.</p>
          ) : (
            <ol class="event-log" aria-live="off" data-testid="event-log">
              {state.events.map((e) => (
                <li key={e.seq} class={`event event-${e.kind} ${e.outcome ? `event-${e.outcome}` : ''}`}>
                  <time class="event-time">{formatTime(e.ts_ms)}</time>
                  <span class={`event-kind kind-${e.kind}`}>{e.kind}</span>
                  <span class="event-text">{e.text}</span>
                </li>
              ))}
            </ol>
          )}
        </Section>

        <div class="stack">
          <Section title="Recently finished" id="recent-title">
            {state.recent.length === 0 ? (
              <p class="muted">Nothing finished since this page opened.</p>
            ) : (
              <ul class="recent-list" data-testid="recent-list">
                {state.recent.map((r) => (
                  <li key={r.req_id}>
                    <span class={`pill pill-${r.status === 'success' ? 'ok' : r.status === 'canceled' ? 'warn' : 'bad'}`}>{r.status}</span>
                    <span class="mono">{r.requested_model}</span>
                    {r.error_code && <span class="muted">{r.error_code}</span>}
                    {r.provider && (
                      <span class="muted">
                        → {r.provider} / {r.model}
                        {r.proxy ? ` via ${r.proxy}` : ''}
                      </span>
                    )}
                    <span class="num muted">
                      {formatDuration(r.latency_ms)} · {formatInt(r.input_tokens)}→{formatInt(r.output_tokens)} tok
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </Section>

          <Section title="Key load" id="gauges-title">
            {liveKeys.length === 0 ? (
              <p class="muted">
                {state.synced ? (
                  <>
                    No provider keys yet.{' '}
                    <a href="/keys" onClick={linkClick}>
                      Add one
                    </a>{' '}
                    to start routing.
                  </>
                ) : (
                  'Waiting for the first snapshot…'
                )}
              </p>
            ) : (
              <ul class="gauges">
                {liveKeys.map((k) => {
                  const st = stateOf(k);
                  return (
                    <li key={k.id} data-testid="live-key" data-state={st.kind}>
                      <div class="gauge-name">
                        <StatusDot color={st.color} label={st.word} />
                        <span>{keyName(k.id) || k.label || k.id}</span>
                        {k.platform && <span class="tag">{k.platform}</span>}
                        <span class={`status-text status-${st.color}`} title={st.detail}>
                          {st.word}
                        </span>
                        {st.until_ms ? <span class="tag tag-warn">back {formatUntil(st.until_ms, now)}</span> : null}
                      </div>
                      <Gauge label="Requests / min" used={k.rpm_used} limit={k.rpm_limit} />
                      <Gauge label="Tokens / min" used={k.tpm_used} limit={k.tpm_limit} />
                    </li>
                  );
                })}
              </ul>
            )}
          </Section>
        </div>
      </div>
    </div>
  );
}
