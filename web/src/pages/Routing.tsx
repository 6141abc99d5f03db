import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, type LimitSet, type RoutingCandidate, type RoutingView } from '../lib/api';
import { loadCatalog } from '../lib/catalog';
import { sortCandidates, strategyWords } from '../lib/routing';
import { formatDuration, formatInt, formatPercent } from '../lib/format';
import { linkClick } from '../lib/router';
import { live } from '../lib/ws';
import { ErrorNote, Gauge, Loading, PageHeader, Section, StatusDot, Unavailable, useAsync, useNow, type DotColor } from '../components/ui';

const MODEL_KEY = 'freellmapi.routing.model';

/** The tabs of the Provider keys area. */
export function KeysTabs({ current }: { current: 'keys' | 'routing' }) {
  return (
    <nav class="tabs" aria-label="Provider keys sections">
      <a href="/keys" onClick={linkClick} aria-current={current === 'keys' ? 'page' : undefined}>
        Keys
      </a>
      <a href="/keys/routing" onClick={linkClick} aria-current={current === 'routing' ? 'page' : undefined}>
        Routing
      </a>
    </nav>
  );
}

const LIMIT_NAMES: [keyof LimitSet, string][] = [
  ['rpm', 'Requests / min'],
  ['rph', 'Requests / hour'],
  ['rpd', 'Requests / day'],
  ['tpm', 'Tokens / min'],
  ['tpd', 'Tokens / day'],
];

export function RoutingPage() {
  const catalog = useAsync(loadCatalog, []);
  const [model, setModel] = useState<string>(() => new URLSearchParams(location.search).get('model') ?? localStorage.getItem(MODEL_KEY) ?? 'auto');
  const view = useAsync(
    async (signal) => {
      const v = await api<RoutingView>('GET', `/api/routing?model=${encodeURIComponent(model)}`, undefined, { signal });
      return { v, at: Date.now() };
    },
    [model],
  );
  const [lastEvent, setLastEvent] = useState<string | null>(null);

  useEffect(() => {
    localStorage.setItem(MODEL_KEY, model);
  }, [model]);

  // A key changed state (cooling, back, invalid): fetch the picture again, at most a few times a second.
  const timer = useRef<number | undefined>(undefined);
  useEffect(() => {
    const off = live.onMessage((m) => {
      if (m.type !== 'key.status') return;
      setLastEvent(`${typeof m.status === 'string' ? m.status.replace('_', ' ') : 'changed'}`);
      window.clearTimeout(timer.current);
      timer.current = window.setTimeout(() => void view.reload(), 300);
    });
    return () => {
      off();
      window.clearTimeout(timer.current);
    };
  }, []);

  const data = view.data?.v;
  const fetchedAt = view.data?.at ?? 0;
  const now = useNow(1000);
  const sorted = useMemo(() => (data ? sortCandidates(data.candidates) : []), [data]);

  // When a cooldown ends, look again once so the candidate shows as ready.
  const soonest = data?.candidates.reduce((m, c) => (c.status.state === 'cooling' ? Math.min(m, (c.status as { remaining_ms: number }).remaining_ms) : m), Infinity) ?? Infinity;
  useEffect(() => {
    if (!Number.isFinite(soonest)) return;
    const t = window.setTimeout(() => void view.reload(), Math.max(500, soonest + 300));
    return () => window.clearTimeout(t);
  }, [fetchedAt, soonest]);

  const list = catalog.data?.list ?? [];
  const groups = {
    auto: list.filter((m) => m.kind === 'auto'),
    profiles: list.filter((m) => m.kind === 'profile'),
    modelGroups: list.filter((m) => m.kind === 'group'),
    models: list.filter((m) => m.kind === 'model'),
  };

  if (view.error instanceof ApiError && view.error.unavailable) {
    return (
      <div class="page">
        <PageHeader title="Provider keys" />
        <KeysTabs current="routing" />
        <Unavailable what="The routing inspector" />
      </div>
    );
  }

  return (
    <div class="page">
      <PageHeader title="Provider keys" />
      <KeysTabs current="routing" />
      <p class="lede">
        How the router sees a model right now: every key that serves it, whether it may be tried, in which order, and why. The
        score is <span class="mono">0.55 × reliability + 0.25 × speed + 0.20 × headroom</span>.
      </p>
      <Section
        title="Routing inspector"
        id="routing-title"
        actions={
          <button type="button" class="btn btn-small" onClick={() => void view.reload()} disabled={view.loading}>
            {view.loading && view.data ? 'Refreshing…' : 'Refresh'}
          </button>
        }
      >
        <div class="filters">
          <div class="field grow">
            <label for="rt-model">Model, profile or auto</label>
            <select id="rt-model" class="input" value={model} onChange={(e) => setModel(e.currentTarget.value)} data-loaded={catalog.data ? 'yes' : 'no'}>
              {!list.some((m) => m.id === model) && <option value={model}>{model}</option>}
              {groups.auto.map((m) => (
                <option key={m.id} value={m.id}>
                  auto (every chat model)
                </option>
              ))}
              {groups.profiles.length > 0 && (
                <optgroup label="Profiles">
                  {groups.profiles.map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.id}
                    </option>
                  ))}
                </optgroup>
              )}
              {groups.modelGroups.length > 0 && (
                <optgroup label="Model groups">
                  {groups.modelGroups.map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.id} — {m.providers.join(', ')}
                    </option>
                  ))}
                </optgroup>
              )}
              {groups.models.length > 0 && (
                <optgroup label="Models">
                  {groups.models.map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.id}
                      {m.providers.length ? ` — ${m.providers.join(', ')}` : ''}
                    </option>
                  ))}
                </optgroup>
              )}
            </select>
          </div>
        </div>
        {view.error ? <ErrorNote error={view.error} title={`Cannot show routing for ${model}`} /> : null}
        {view.loading && !data && !view.error && <Loading />}
        {data && (
          <>
            <p class="small muted" data-testid="routing-summary" aria-live="polite">
              <span class="mono">{data.model}</span> · {strategyWords(data.strategy)} · {sorted.length} candidate
              {sorted.length === 1 ? '' : 's'}, {sorted.filter((c) => c.status.state === 'ready').length} ready
              {data.queue_depth ? ` · ${formatInt(data.queue_depth)} request${data.queue_depth === 1 ? '' : 's'} waiting` : ''} · updated{' '}
              {now - fetchedAt < 1500 ? 'just now' : `${formatDuration(now - fetchedAt)} ago`}
              {lastEvent ? ` · last key event: ${lastEvent}` : ''}
            </p>
            {sorted.length === 0 ? (
              <p class="muted">No key serves this model.</p>
            ) : (
              <ol class="cand-list" data-testid="routing-candidates">
                {sorted.map((c) => (
                  <Candidate key={`${c.key_id}/${c.model}`} c={c} elapsed={now - fetchedAt} profile={!/^score/i.test(data.strategy)} />
                ))}
              </ol>
            )}
          </>
        )}
      </Section>
    </div>
  );
}

function stateOf(c: RoutingCandidate, elapsed: number): { word: string; color: DotColor; detail: string } {
  const s = c.status;
  switch (s.state) {
    case 'ready':
      return { word: `ready #${(s as { order: number }).order}`, color: 'green', detail: `tried ${ordinal((s as { order: number }).order)}` };
    case 'cooling': {
      const left = Math.max(0, (s as { remaining_ms: number }).remaining_ms - elapsed);
      return { word: 'cooling', color: 'amber', detail: left > 0 ? `${formatDuration(left)} left` : 'ending now' };
    }
    case 'capped':
      return { word: 'capped', color: 'amber', detail: 'a limit is reached: waits for its window' };
    case 'invalid':
      return { word: 'invalid', color: 'red', detail: 'the provider refused the key: edit it to retry' };
    default:
      return { word: s.state, color: 'grey', detail: '' };
  }
}

function ordinal(n: number): string {
  return n === 1 ? 'first' : n === 2 ? 'second' : n === 3 ? 'third' : `${n}th`;
}

function Candidate({ c, elapsed, profile }: { c: RoutingCandidate; elapsed: number; profile: boolean }) {
  const st = stateOf(c, elapsed);
  const scopes = c.limits.map((sc) => ({
    scope: sc.scope,
    rows: LIMIT_NAMES.filter(([k]) => sc.limits[k] != null && (sc.limits[k] as number) > 0).map(([k, label]) => ({ k, label, used: sc.used[k] ?? 0, limit: sc.limits[k] as number })),
  }));
  return (
    <li class={`cand cand-${c.status.state}`} data-testid="routing-candidate" data-state={c.status.state}>
      <div class="cand-head">
        <StatusDot color={st.color} label={st.word} />
        <span class={`pill pill-${st.color === 'green' ? 'ok' : st.color === 'red' ? 'bad' : 'warn'}`} data-testid="candidate-state">
          {st.word}
        </span>
        <span class="provider">{c.provider}</span>
        <span class="cand-key">{c.key_label || c.key_id}</span>
        <span class="mono small">{c.model}</span>
        {(profile || c.priority > 0) && <span class="tag tag-muted">profile member {c.priority + 1}</span>}
        <span class="muted small cand-detail">{st.detail}</span>
      </div>
      <dl class="cand-inputs">
        <div>
          <dt>Score</dt>
          <dd class="num" data-testid="candidate-score">
            {c.status.state === 'invalid' ? <span class="muted" title="An invalid key is never tried: it has no score">excluded</span> : c.score.toFixed(3)}
          </dd>
        </div>
        <div>
          <dt>Reliability</dt>
          <dd class="num">
            {formatPercent(c.inputs.reliability)} <span class="muted">({c.inputs.samples.toFixed(1)} samples)</span>
          </dd>
        </div>
        <div>
          <dt>Latency</dt>
          <dd class="num">{c.inputs.latency_ms != null ? formatDuration(c.inputs.latency_ms) : <span class="muted">unmeasured</span>}</dd>
        </div>
        <div>
          <dt>Headroom</dt>
          <dd class="num">{formatPercent(c.inputs.headroom)}</dd>
        </div>
      </dl>
      {scopes.every((s) => s.rows.length === 0) ? (
        <p class="muted small">No caps on this key or model.</p>
      ) : (
        <div class="cand-scopes">
          {scopes
            .filter((s) => s.rows.length > 0)
            .map((s) => (
              <div key={s.scope} class="cand-scope">
                <div class="small muted">{s.scope === 'key' ? 'Key (all models)' : 'This model on the key'}</div>
                {s.rows.map((r) => (
                  <Gauge key={r.k} label={`${r.label}${s.scope === 'key' ? '' : ' (model)'}`} used={r.used} limit={r.limit} />
                ))}
              </div>
            ))}
        </div>
      )}
    </li>
  );
}
