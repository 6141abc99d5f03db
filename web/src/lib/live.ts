// State of the live dashboard, driven only by WebSocket messages (see API-CONTRACT.md, "GET /ws").
// `reduceLive` is pure: (state, message, now) → new state. Unit-tested.

export type KeyStatus = 'healthy' | 'rate_limited' | 'invalid' | 'disabled' | 'error' | 'unknown';

export interface InFlightRow {
  req_id: string;
  requested_model: string;
  stream: boolean;
  started_at_ms: number;
  input_tokens: number;
  output_tokens: number;
  provider?: string;
  model?: string;
  key_id?: string;
  proxy?: string | null;
  attempt: number;
  last_error?: string;
  /** Waiting in the queue: when the soonest key frees up (Unix ms), or 0 when it waits for its turn. */
  queued_until_ms?: number | null;
}

export interface FinishedRow {
  req_id: string;
  requested_model: string;
  status: 'success' | 'error' | 'canceled' | 'refused';
  provider?: string;
  model?: string;
  /** The proxy of the last attempt (from `request.attempt`); null when direct. */
  proxy?: string | null;
  latency_ms: number;
  input_tokens: number;
  output_tokens: number;
  attempts: number;
  finished_at_ms: number;
  error_code?: string;
}

export interface LiveKey {
  id: string;
  platform?: string;
  label?: string;
  status: KeyStatus;
  reason?: string;
  cooldown_until_ms?: number | null;
  rpm_used: number;
  rpm_limit?: number | null;
  tpm_used: number;
  tpm_limit?: number | null;
  /** Where `status` comes from: a snapshot ("healthy" there only means not cooling and not invalid) or a
   * `key.status` event (news about the key). */
  source?: 'snapshot' | 'event';
  /** When a request this dashboard watched last succeeded through the key (since its last `key.status`). */
  last_ok_ms?: number;
}

export interface Totals {
  requests: number;
  success: number;
  errors: number;
  tokens_in: number;
  tokens_out: number;
}

export type RoutingEventKind = 'started' | 'attempt' | 'failure' | 'cooldown' | 'finished' | 'key';

export interface RoutingEvent {
  seq: number;
  ts_ms: number;
  kind: RoutingEventKind;
  req_id?: string;
  key_id?: string;
  text: string;
  outcome?: 'ok' | 'warn' | 'bad';
}

export interface LiveState {
  /** Whether a snapshot has been received since the page opened. */
  synced: boolean;
  inFlight: Record<string, InFlightRow>;
  recent: FinishedRow[];
  keys: Record<string, LiveKey>;
  totals: Totals;
  /** Tokens of requests that finished while this dashboard was open. */
  session: { tokens_in: number; tokens_out: number; requests: number };
  events: RoutingEvent[];
  seq: number;
  /** Requests waiting for a free key (from the snapshot), when the server reports it. */
  queueDepth?: number;
}

export const MAX_EVENTS = 200;
export const MAX_RECENT = 25;

export function initialLiveState(): LiveState {
  return {
    synced: false,
    inFlight: {},
    recent: [],
    keys: {},
    totals: { requests: 0, success: 0, errors: 0, tokens_in: 0, tokens_out: 0 },
    session: { tokens_in: 0, tokens_out: 0, requests: 0 },
    events: [],
    seq: 0,
  };
}

type Msg = Record<string, unknown> & { type?: unknown };

const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const optNum = (v: unknown): number | null | undefined =>
  v === null ? null : typeof v === 'number' && Number.isFinite(v) ? v : undefined;

export function normalizeStatus(s: unknown): KeyStatus {
  switch (s) {
    case 'healthy':
    case 'rate_limited':
    case 'invalid':
    case 'disabled':
    case 'error':
      return s;
    case 'cooling':
    case 'cooldown':
      return 'rate_limited';
    default:
      return 'unknown';
  }
}

function pushEvent(state: LiveState, ev: Omit<RoutingEvent, 'seq'>): Pick<LiveState, 'events' | 'seq'> {
  const seq = state.seq + 1;
  const events = [{ ...ev, seq }, ...state.events];
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
  return { events, seq };
}

function route(provider?: string, model?: string, proxy?: string | null): string {
  const p = provider ?? '?';
  const via = proxy ? ` via ${proxy}` : '';
  return model ? `${p} / ${model}${via}` : `${p}${via}`;
}

function shortId(id: string): string {
  return id.length > 10 ? id.slice(-8) : id;
}

/** Applies one server message. Unknown or malformed messages leave the state unchanged. */
export function reduceLive(state: LiveState, raw: unknown, now: number = Date.now()): LiveState {
  if (!raw || typeof raw !== 'object') return state;
  const m = raw as Msg;
  switch (m.type) {
    case 'snapshot': {
      const inFlight: Record<string, InFlightRow> = {};
      for (const r of Array.isArray(m.in_flight) ? (m.in_flight as Msg[]) : []) {
        const id = str(r.req_id);
        if (!id) continue;
        inFlight[id] = {
          req_id: id,
          requested_model: str(r.requested_model) ?? '',
          stream: r.stream === true,
          started_at_ms: num(r.started_at_ms, now),
          input_tokens: num(r.input_tokens),
          output_tokens: num(r.output_tokens),
          provider: str(r.provider),
          model: str(r.model),
          key_id: str(r.key_id),
          proxy: str(r.proxy) ?? null,
          attempt: num(r.attempt, str(r.provider) ? 1 : 0),
          queued_until_ms: optNum(r.queued_until_ms) ?? null,
        };
      }
      const keys: Record<string, LiveKey> = {};
      for (const k of Array.isArray(m.keys) ? (m.keys as Msg[]) : []) {
        const id = str(k.id);
        if (!id) continue;
        keys[id] = {
          id,
          platform: str(k.platform),
          label: str(k.label),
          status: normalizeStatus(k.status),
          reason: str(k.reason),
          cooldown_until_ms: optNum(k.cooldown_until_ms) ?? null,
          rpm_used: num(k.rpm_used),
          rpm_limit: optNum(k.rpm_limit) ?? null,
          tpm_used: num(k.tpm_used),
          tpm_limit: optNum(k.tpm_limit) ?? null,
          source: 'snapshot',
          last_ok_ms: state.keys[id]?.last_ok_ms,
        };
      }
      const t = (m.totals ?? {}) as Msg;
      return {
        ...state,
        synced: true,
        queueDepth: optNum(m.queue_depth) ?? undefined,
        inFlight,
        keys,
        totals: {
          requests: num(t.requests),
          success: num(t.success),
          errors: num(t.errors),
          tokens_in: num(t.tokens_in),
          tokens_out: num(t.tokens_out),
        },
      };
    }
    case 'request.started': {
      const id = str(m.req_id);
      if (!id) return state;
      const row: InFlightRow = {
        req_id: id,
        requested_model: str(m.requested_model) ?? '',
        stream: m.stream === true,
        started_at_ms: num(m.ts_ms, now),
        input_tokens: num(m.input_tokens),
        output_tokens: 0,
        attempt: 0,
      };
      return {
        ...state,
        inFlight: { ...state.inFlight, [id]: { ...row, ...state.inFlight[id], input_tokens: row.input_tokens } },
        ...pushEvent(state, {
          ts_ms: row.started_at_ms,
          kind: 'started',
          req_id: id,
          text: `${shortId(id)} started: ${row.requested_model || '(no model)'}${row.stream ? ' (stream)' : ''}`,
        }),
      };
    }
    case 'request.attempt': {
      const id = str(m.req_id);
      if (!id) return state;
      const prev: InFlightRow = state.inFlight[id] ?? {
        req_id: id,
        requested_model: '',
        stream: false,
        started_at_ms: num(m.ts_ms, now),
        input_tokens: 0,
        output_tokens: 0,
        attempt: 0,
      };
      const row: InFlightRow = {
        ...prev,
        attempt: num(m.attempt, prev.attempt + 1),
        provider: str(m.provider),
        model: str(m.model),
        key_id: str(m.key_id),
        proxy: str(m.proxy) ?? null,
        queued_until_ms: null,
      };
      return {
        ...state,
        inFlight: { ...state.inFlight, [id]: row },
        ...pushEvent(state, {
          ts_ms: num(m.ts_ms, now),
          kind: 'attempt',
          req_id: id,
          key_id: row.key_id,
          text: `${shortId(id)} attempt ${row.attempt}: ${route(row.provider, row.model, row.proxy)}`,
        }),
      };
    }
    case 'request.queued': {
      const id = str(m.req_id);
      const prev = id ? state.inFlight[id] : undefined;
      if (!id || !prev) return state;
      return { ...state, inFlight: { ...state.inFlight, [id]: { ...prev, queued_until_ms: num(m.until_ms) } } };
    }
    case 'request.attempt_failed': {
      const id = str(m.req_id);
      if (!id) return state;
      const message = str(m.message) ?? str(m.error_class) ?? 'failed';
      const status = optNum(m.status);
      const cls = str(m.error_class);
      const cooldown = optNum(m.cooldown_ms);
      let text = `${shortId(id)} attempt ${num(m.attempt)} failed on ${route(str(m.provider), str(m.model))}`;
      text += `: ${cls ?? 'error'}${status ? ` ${status}` : ''} after ${Math.round(num(m.latency_ms))} ms`;
      if (message && message !== cls) text += ` — ${message}`;
      let next: LiveState = { ...state, ...pushEvent(state, { ts_ms: now, kind: 'failure', req_id: id, key_id: str(m.key_id), text, outcome: 'bad' }) };
      if (cooldown && cooldown > 0) {
        next = {
          ...next,
          ...pushEvent(next, {
            ts_ms: now,
            kind: 'cooldown',
            req_id: id,
            key_id: str(m.key_id),
            text: `${route(str(m.provider), str(m.model))} cooling down for ${Math.round(cooldown / 1000)} s`,
            outcome: 'warn',
          }),
        };
      }
      const row = state.inFlight[id];
      if (row) next = { ...next, inFlight: { ...next.inFlight, [id]: { ...row, last_error: message } } };
      return next;
    }
    case 'request.tokens': {
      const id = str(m.req_id);
      const row = id ? state.inFlight[id] : undefined;
      if (!id || !row) return state;
      const out = num(m.output_tokens, row.output_tokens);
      const input = optNum(m.input_tokens);
      if (out <= row.output_tokens && input == null) return state;
      return {
        ...state,
        inFlight: {
          ...state.inFlight,
          [id]: { ...row, output_tokens: Math.max(out, row.output_tokens), input_tokens: input ?? row.input_tokens },
        },
      };
    }
    case 'request.finished': {
      const id = str(m.req_id);
      if (!id) return state;
      const row = state.inFlight[id];
      const rawStatus = str(m.status);
      const status: FinishedRow['status'] = rawStatus === 'success' || rawStatus === 'canceled' || rawStatus === 'refused' ? rawStatus : 'error';
      const input = num(m.input_tokens, row?.input_tokens ?? 0);
      const output = num(m.output_tokens, row?.output_tokens ?? 0);
      const fin: FinishedRow = {
        req_id: id,
        requested_model: row?.requested_model ?? str(m.requested_model) ?? '',
        status,
        provider: str(m.provider) ?? row?.provider,
        model: str(m.model) ?? row?.model,
        proxy: str(m.proxy) ?? row?.proxy ?? null,
        latency_ms: num(m.latency_ms, row ? now - row.started_at_ms : 0),
        input_tokens: input,
        output_tokens: output,
        attempts: num(m.attempts, row?.attempt ?? 0),
        finished_at_ms: now,
        error_code: str(m.error_code),
      };
      const inFlight = { ...state.inFlight };
      delete inFlight[id];
      const recent = [fin, ...state.recent.filter((r) => r.req_id !== id)].slice(0, MAX_RECENT);
      // The key that served a successful request is seen working.
      const servedBy = status === 'success' ? (str(m.key_id) ?? row?.key_id) : undefined;
      const keys = servedBy
        ? { ...state.keys, [servedBy]: { ...(state.keys[servedBy] ?? { id: servedBy, status: 'unknown' as KeyStatus, rpm_used: 0, tpm_used: 0 }), last_ok_ms: now } }
        : state.keys;
      return {
        ...state,
        inFlight,
        recent,
        keys,
        totals: {
          requests: state.totals.requests + 1,
          success: state.totals.success + (status === 'success' ? 1 : 0),
          errors: state.totals.errors + (status === 'error' ? 1 : 0),
          tokens_in: state.totals.tokens_in + input,
          tokens_out: state.totals.tokens_out + output,
        },
        session: {
          requests: state.session.requests + 1,
          tokens_in: state.session.tokens_in + input,
          tokens_out: state.session.tokens_out + output,
        },
        ...pushEvent(state, {
          ts_ms: now,
          kind: 'finished',
          req_id: id,
          text: `${shortId(id)} ${status}${fin.error_code ? ` (${fin.error_code})` : ''}${fin.provider ? ` on ${route(fin.provider, fin.model)}` : ''} in ${Math.round(
            fin.latency_ms,
          )} ms, ${fin.attempts} attempt${fin.attempts === 1 ? '' : 's'}, ${input} → ${output} tokens`,
          outcome: status === 'success' ? 'ok' : status === 'canceled' ? 'warn' : 'bad',
        }),
      };
    }
    case 'key.status': {
      const id = str(m.key_id);
      if (!id) return state;
      const prev: LiveKey = state.keys[id] ?? { id, status: 'unknown', rpm_used: 0, tpm_used: 0 };
      const status = normalizeStatus(m.status);
      const key: LiveKey = {
        ...prev,
        status,
        reason: str(m.reason),
        cooldown_until_ms: optNum(m.cooldown_until_ms) ?? null,
        source: 'event',
        last_ok_ms: status === 'healthy' ? prev.last_ok_ms : undefined,
      };
      const changed = prev.status !== status;
      return {
        ...state,
        keys: { ...state.keys, [id]: key },
        ...(changed
          ? pushEvent(state, {
              ts_ms: now,
              kind: status === 'rate_limited' ? 'cooldown' : 'key',
              key_id: id,
              text: `key ${key.label ?? shortId(id)} is now ${status.replace('_', ' ')}${key.reason ? `: ${key.reason}` : ''}`,
              outcome: status === 'healthy' ? 'ok' : status === 'rate_limited' ? 'warn' : 'bad',
            })
          : {}),
      };
    }
    case 'ratelimit.gauge': {
      const id = str(m.key_id);
      if (!id) return state;
      const prev: LiveKey = state.keys[id] ?? { id, status: 'unknown', rpm_used: 0, tpm_used: 0 };
      return {
        ...state,
        keys: {
          ...state.keys,
          [id]: {
            ...prev,
            rpm_used: num(m.rpm_used, prev.rpm_used),
            rpm_limit: m.rpm_limit === undefined ? prev.rpm_limit : optNum(m.rpm_limit) ?? null,
            tpm_used: num(m.tpm_used, prev.tpm_used),
            tpm_limit: m.tpm_limit === undefined ? prev.tpm_limit : optNum(m.tpm_limit) ?? null,
          },
        },
      };
    }
    default:
      return state;
  }
}

/** Share of successes among requests that succeeded or failed (a request the client canceled is neither), or null. */
export function successRate(t: Totals): number | null {
  const decided = t.success + t.errors;
  return decided > 0 ? t.success / decided : null;
}

/** What a queued request waits for, in words. */
export function queuedWords(untilMs: number, now: number): string {
  if (untilMs <= 0) return 'queued — waiting for its turn';
  const secs = Math.max(0, Math.ceil((untilMs - now) / 1000));
  return secs === 0 ? 'queued — a key frees up now' : `queued — a key frees up in ${secs} s`;
}
