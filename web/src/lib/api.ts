// Every call to the gateway's admin API goes through `api()`: same-origin cookie session, JSON bodies (the server
// refuses non-JSON mutations as its CSRF guard), and errors turned into `ApiError` carrying the server's message.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
    readonly type?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The route does not exist in this server version (a planned endpoint not implemented yet). */
  get unavailable(): boolean {
    if (this.status !== 404) return false;
    if (this.code === 'unknown_endpoint' || this.code === undefined) return true;
    // The current server answers unknown /api routes with `not_found` and the message "API route not found".
    return this.code === 'not_found' && /api route/i.test(this.message);
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called whenever an authenticated call answers 401 (session expired or logged out elsewhere). */
export function onUnauthorized(fn: Listener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** Reads `{"error":{"message","type","code"}}` from a failed response, falling back to the status line. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* body unreadable */
  }
  try {
    const body = JSON.parse(text) as { error?: { message?: string; type?: string; code?: string } | string };
    if (body && typeof body.error === 'object' && body.error) {
      return new ApiError(body.error.message || `HTTP ${res.status}`, res.status, body.error.code, body.error.type);
    }
    if (body && typeof body.error === 'string') return new ApiError(body.error, res.status);
  } catch {
    /* not JSON */
  }
  const reason = res.statusText ? ` ${res.statusText}` : '';
  const snippet = text && text.length < 200 && !text.trimStart().startsWith('<') ? `: ${text.trim()}` : '';
  return new ApiError(`The server answered HTTP ${res.status}${reason}${snippet}`, res.status);
}

export interface ApiOptions {
  signal?: AbortSignal;
  /** Do not fire the global 401 handler (login form, session probe). */
  quiet401?: boolean;
  /** Send this text as the body (`text/plain`) instead of JSON: only `POST /api/proxies/import` takes one. */
  text?: string;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, opts: ApiOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const init: RequestInit = { method, credentials: 'same-origin', headers, signal: opts.signal };
  if (opts.text !== undefined) {
    headers['Content-Type'] = 'text/plain; charset=utf-8';
    init.body = opts.text;
  } else if (method !== 'GET' && method !== 'HEAD' && method !== 'DELETE') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError('Cannot reach the gateway. Is the server running? (network error)', 0, 'network_error');
  }
  if (!res.ok) {
    const err = await errorFromResponse(res);
    if (res.status === 401 && !opts.quiet401) unauthorizedListeners.forEach((fn) => fn());
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError('The server sent a response that is not JSON', res.status, 'bad_response');
  }
}

/** Lists come as `{data:[...]}`; tolerate a bare array too. */
export function listOf<T>(body: unknown): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === 'object' && Array.isArray((body as { data?: unknown }).data)) {
    return (body as { data: T[] }).data;
  }
  return [];
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---- Shapes of the existing routes (crates/server/src/admin.rs) and of the planned ones (API-CONTRACT.md) ----

export interface User {
  id: string;
  username: string;
  role: 'admin' | 'user' | string;
  enabled?: boolean;
  disabled?: boolean;
  created_at?: number;
}

export interface Platform {
  id: string;
  name: string;
  default_base_url: string | null;
  keyless: boolean;
  served: boolean;
}

export interface ProviderKey {
  id: string;
  platform: string;
  platform_name: string;
  label: string;
  masked_key: string | null;
  base_url: string | null;
  models: string[];
  enabled: boolean;
  status: string;
  status_reason: string | null;
  /** `reason`: the failure class that started the cooldown (`rate_limited`, `server_error`, `network`, `timeout`, …),
   * `null` while the history does not have it yet; `message`: that failure's message. */
  cooldowns: { model: string; remaining_ms: number; reason?: string | null; message?: string | null }[];
  source: 'config' | 'api';
  created_at: number;
  updated_at: number;
  /** Per-key overrides (absent field = catalog default). */
  limits?: KeyLimits | null;
  /** The limits the router applies: overrides merged over the catalog defaults. */
  effective_limits?: KeyLimits | null;
  /** Current use against those limits. */
  usage?: KeyLimits | null;
  /** disabled / invalid / rate_limited (cooling) / healthy (used since the start) / unknown (never checked nor used
   * since the start) / the last check's verdict, as the router sees the key now. */
  live_status?: string;
  rpm_limit?: number | null;
  tpm_limit?: number | null;
  notice?: string | null;
  discovered?: { added: string[]; not_listed_by_endpoint: string[] };
}

export interface KeyLimits {
  rpm?: number | null;
  rph?: number | null;
  rpd?: number | null;
  tpm?: number | null;
  tpd?: number | null;
}

export interface GatewayKey {
  id: string;
  label: string;
  prefix: string;
  enabled: boolean;
  config_name: string | null;
  created_at: number;
  last_used_at: number | null;
  /** Requests per minute allowed (sliding minute); null = no limit. */
  rpm_limit?: number | null;
  /** Prompt + completion tokens per UTC day; null = no limit. */
  tpd_limit?: number | null;
  /** Models (and profiles) the key may ask for; null = every model. */
  allowed_models?: string[] | null;
  /** Totals since the key was created (flushed every few seconds). */
  request_count?: number;
  token_count?: number;
  /** Live use against the limits. */
  usage?: { requests_last_minute: number; tokens_today: number } | null;
  /** Requests the gateway refused for this key over the last 24 hours, and the latest one's reason. */
  refused_24h?: number;
  last_refusal?: { code: string | null; at: number } | null;
  key?: string;
  notice?: string;
}

export interface RequestRow {
  id: string;
  endpoint: string;
  requested_model: string;
  platform: string | null;
  model: string | null;
  provider_key_id: string | null;
  status: string;
  http_status: number;
  error_class: string | null;
  error_message: string | null;
  stream: boolean;
  attempts: number;
  input_tokens: number | null;
  output_tokens: number | null;
  latency_ms: number;
  ttfb_ms: number | null;
  created_at: number;
}

export interface KeyStats {
  /** Attempts through the key: requests it served or failed last, and attempts failed over to another key. */
  requests: number;
  served: number;
  failed_attempts: number;
  last_error: { at_ms: number; code: string; message: string | null } | null;
  success_rate: number;
  errors: number;
  rate_limited: number;
  latency_ms: { min: number; p50: number; avg: number; p95: number; p99: number; max: number };
  hourly: { hour_start_ms: number; requests: number; errors: number }[];
  by_model: { model: string; requests: number; errors: number; avg_latency_ms: number }[];
  by_error: { code: string; count: number }[];
  recent: {
    id: string;
    created_at_ms: number;
    model: string;
    status: string;
    http_status: number;
    latency_ms: number;
    input_tokens: number;
    output_tokens: number;
    error_code?: string | null;
    error_message?: string | null;
  }[];
  cooldowns: { model: string; until_ms: number; reason: string }[];
}

export interface ModelEntry {
  id: string;
  /** `group`: a model group, one name for the same model on several platforms. */
  kind: 'model' | 'group' | 'profile' | 'auto';
  context_window?: number | null;
  providers: string[];
  /** An embedding model (not offered for chat). */
  embedding?: boolean;
}

export interface Analytics {
  totals: {
    requests: number;
    success_rate: number;
    errors: number;
    tokens_in: number;
    tokens_out: number;
    avg_latency_ms: number;
    p95_latency_ms: number;
  };
  series: { bucket_start_ms: number; requests: number; errors: number; tokens_in: number; tokens_out: number }[];
  by_provider: { provider: string; requests: number; errors: number; avg_latency_ms: number }[];
  by_model: {
    model: string;
    provider: string;
    requests: number;
    errors: number;
    avg_latency_ms: number;
    tokens_in: number;
    tokens_out: number;
  }[];
}

export type Strategy = 'failover' | 'round-robin' | 'least-latency' | 'score';

export interface Profile {
  id: string;
  name: string;
  strategy: Strategy;
  models: string[];
  context_window?: number | null;
  /** Members some enabled key of the user serves; the others are skipped by the router. */
  reachable_models?: string[];
  source?: 'config' | 'api';
  stats_24h?: { requests: number; errors: number };
  created_at?: number;
}

// ---- Outbound proxies (crates/server/src/proxy/admin.rs, docs/proxies.md) ----

export interface ProxyStatsView {
  requests: number;
  successes: number;
  proxy_errors: number;
  success_rate: number | null;
  avg_latency_ms: number | null;
  bytes_in: number;
  bytes_out: number;
  last_error: string | null;
  last_error_at: number | null;
}

export interface ProxyView {
  id: string;
  label: string;
  /** `scheme://host:port`, never with credentials. */
  url: string;
  /** `us…:****` or null. */
  credentials: string | null;
  country: string | null;
  enabled: boolean;
  source: 'api' | 'env';
  created_at?: number;
  updated_at?: number;
  /** null: not in the live pool (e.g. disabled). */
  healthy: boolean | null;
  health?: { consecutive_failures: number; consecutive_successes: number; latency_ms: number | null; last_check_at: number | null };
  stats?: ProxyStatsView;
}

export interface ProxySettings {
  strategy: string;
  bypass: string[];
  direct_fallback: boolean;
  single_proxy?: string | null;
  rotation_seconds?: number;
  health_interval_seconds?: number;
}

export interface ProxyList {
  data: ProxyView[];
  single: ProxyView | null;
  settings: ProxySettings;
}

export interface ImportResult {
  added: number;
  skipped: number;
  errors: { line: number; error: string }[];
}

// ---- Routing inspector (GET /api/routing?model=, crates/server/src/dashboard_api.rs) ----

export type LimitSet = { rpm?: number | null; rph?: number | null; rpd?: number | null; tpm?: number | null; tpd?: number | null };

export interface RoutingCandidate {
  key_id: string;
  key_label: string;
  provider: string;
  model: string;
  priority: number;
  status: { state: 'ready'; order: number } | { state: 'cooling'; remaining_ms: number } | { state: 'capped' } | { state: 'invalid' } | { state: string; order?: number; remaining_ms?: number };
  score: number;
  inputs: { reliability: number; samples: number; latency_ms: number | null; headroom: number };
  limits: { scope: 'key' | 'key+model' | string; limits: LimitSet; used: LimitSet }[];
  context_window?: number | null;
}

export interface RoutingView {
  model: string;
  strategy: string;
  formula?: string;
  queue_depth?: number;
  candidates: RoutingCandidate[];
}
