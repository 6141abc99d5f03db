// Client-side analytics from the request history (`GET /api/requests`), used when the server has no
// `/api/analytics` yet, and for the history table's filters.
import type { Analytics, RequestRow } from './api';
import { toMs } from './format';

export type Range = '24h' | '7d' | '30d';

export const RANGE_MS: Record<Range, number> = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };
export const BUCKET_MS: Record<Range, number> = { '24h': 3_600_000, '7d': 6 * 3_600_000, '30d': 86_400_000 };

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function analyticsFromRows(rows: RequestRow[], range: Range, now: number = Date.now()): Analytics {
  const from = now - RANGE_MS[range];
  const bucket = BUCKET_MS[range];
  const inRange = rows.filter((r) => (toMs(r.created_at) ?? 0) >= from);
  const first = Math.floor(from / bucket) * bucket;
  const n = Math.ceil((now - first) / bucket);
  const series = Array.from({ length: n }, (_, i) => ({ bucket_start_ms: first + i * bucket, requests: 0, errors: 0, tokens_in: 0, tokens_out: 0 }));
  const prov = new Map<string, { provider: string; requests: number; errors: number; lat: number }>();
  const mod = new Map<string, { model: string; provider: string; requests: number; errors: number; lat: number; tokens_in: number; tokens_out: number }>();
  let errors = 0;
  let success = 0;
  let tin = 0;
  let tout = 0;
  const lats: number[] = [];
  for (const r of inRange) {
    const ts = toMs(r.created_at) ?? 0;
    const isErr = r.status === 'error';
    if (isErr) errors++;
    if (r.status === 'success') success++;
    tin += r.input_tokens ?? 0;
    tout += r.output_tokens ?? 0;
    lats.push(r.latency_ms);
    const b = series[Math.min(n - 1, Math.max(0, Math.floor((ts - first) / bucket)))];
    if (b) {
      b.requests++;
      if (isErr) b.errors++;
      b.tokens_in += r.input_tokens ?? 0;
      b.tokens_out += r.output_tokens ?? 0;
    }
    const p = r.platform ?? '(none)';
    const pe = prov.get(p) ?? { provider: p, requests: 0, errors: 0, lat: 0 };
    pe.requests++;
    pe.errors += isErr ? 1 : 0;
    pe.lat += r.latency_ms;
    prov.set(p, pe);
    const mk = `${r.model ?? r.requested_model}\u0000${p}`;
    const me = mod.get(mk) ?? { model: r.model ?? r.requested_model, provider: p, requests: 0, errors: 0, lat: 0, tokens_in: 0, tokens_out: 0 };
    me.requests++;
    me.errors += isErr ? 1 : 0;
    me.lat += r.latency_ms;
    me.tokens_in += r.input_tokens ?? 0;
    me.tokens_out += r.output_tokens ?? 0;
    mod.set(mk, me);
  }
  lats.sort((a, b) => a - b);
  const total = inRange.length;
  return {
    totals: {
      requests: total,
      // Canceled requests (the client went away) are neither successes nor failures.
      success_rate: success + errors ? success / (success + errors) : 0,
      errors,
      tokens_in: tin,
      tokens_out: tout,
      avg_latency_ms: total ? lats.reduce((s, x) => s + x, 0) / total : 0,
      p95_latency_ms: percentile(lats, 95),
    },
    series,
    by_provider: [...prov.values()]
      .map((p) => ({ provider: p.provider, requests: p.requests, errors: p.errors, avg_latency_ms: p.lat / p.requests }))
      .sort((a, b) => b.requests - a.requests),
    by_model: [...mod.values()]
      .map((m) => ({ ...m, avg_latency_ms: m.lat / m.requests, lat: undefined }))
      .map(({ lat: _l, ...m }) => m)
      .sort((a, b) => b.requests - a.requests),
  };
}

export interface HistoryFilter {
  status: '' | 'success' | 'error' | 'canceled' | 'refused';
  text: string;
}

export function filterRows(rows: RequestRow[], f: HistoryFilter): RequestRow[] {
  const q = f.text.trim().toLowerCase();
  return rows.filter((r) => {
    if (f.status && r.status !== f.status) return false;
    if (!q) return true;
    return [r.id, r.requested_model, r.model ?? '', r.platform ?? '', r.error_class ?? '', r.error_message ?? '', r.endpoint].some((s) =>
      s.toLowerCase().includes(q),
    );
  });
}
