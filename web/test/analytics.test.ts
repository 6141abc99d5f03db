import { describe, expect, it } from 'vitest';
import { analyticsFromRows, filterRows } from '../src/lib/analytics';
import type { RequestRow } from '../src/lib/api';

const NOW = Date.UTC(2026, 0, 10, 12, 30);

function row(over: Partial<RequestRow>): RequestRow {
  return {
    id: 'r', endpoint: 'chat', requested_model: 'auto', platform: 'groq', model: 'llama', provider_key_id: 'k',
    status: 'success', http_status: 200, error_class: null, error_message: null, stream: true, attempts: 1,
    input_tokens: 10, output_tokens: 20, latency_ms: 100, ttfb_ms: 50, created_at: NOW - 60_000, ...over,
  };
}

describe('analyticsFromRows', () => {
  const rows = [
    row({ id: 'a', latency_ms: 100 }),
    row({ id: 'b', latency_ms: 300, status: 'error', http_status: 429, platform: 'cerebras', model: 'qwen', output_tokens: null }),
    row({ id: 'c', latency_ms: 200, created_at: NOW - 3 * 3_600_000 }),
    row({ id: 'old', created_at: NOW - 2 * 86_400_000 }),
    row({ id: 'gone', status: 'canceled', created_at: NOW - 5 * 86_400_000 }),
  ];

  it('computes totals over the range only', () => {
    const a = analyticsFromRows(rows, '24h', NOW);
    expect(a.totals.requests).toBe(3);
    expect(a.totals.errors).toBe(1);
    expect(a.totals.success_rate).toBeCloseTo(2 / 3);
    expect(a.totals.tokens_in).toBe(30);
    expect(a.totals.tokens_out).toBe(40);
    expect(a.totals.avg_latency_ms).toBe(200);
    expect(a.totals.p95_latency_ms).toBe(300);
    const week = analyticsFromRows(rows, '7d', NOW).totals;
    expect(week.requests).toBe(5);
    expect(week.success_rate).toBeCloseTo(3 / 4);
  });

  it('buckets by hour for 24h, oldest first, ending at now', () => {
    const a = analyticsFromRows(rows, '24h', NOW);
    expect(a.series.length).toBe(25);
    expect(a.series.reduce((s, b) => s + b.requests, 0)).toBe(3);
    const last = a.series[a.series.length - 1];
    expect(last.requests).toBe(2);
    expect(last.errors).toBe(1);
    expect(a.series[0].bucket_start_ms).toBeLessThan(a.series[1].bucket_start_ms);
  });

  it('groups by provider and model, busiest first', () => {
    const a = analyticsFromRows(rows, '24h', NOW);
    expect(a.by_provider.map((p) => [p.provider, p.requests, p.errors])).toEqual([
      ['groq', 2, 0],
      ['cerebras', 1, 1],
    ]);
    expect(a.by_model[0]).toMatchObject({ model: 'llama', provider: 'groq', requests: 2, avg_latency_ms: 150 });
    expect(a.by_model[0]).not.toHaveProperty('lat');
  });

  it('handles no rows', () => {
    const a = analyticsFromRows([], '30d', NOW);
    expect(a.totals).toMatchObject({ requests: 0, success_rate: 0, p95_latency_ms: 0 });
    expect(a.series.every((b) => b.requests === 0)).toBe(true);
  });
});

describe('filterRows', () => {
  const rows = [row({ id: 'a' }), row({ id: 'b', status: 'error', error_message: 'Rate limit hit' }), row({ id: 'c', status: 'canceled', model: 'Qwen3' })];
  it('filters by status and free text (case-insensitive)', () => {
    expect(filterRows(rows, { status: 'error', text: '' }).map((r) => r.id)).toEqual(['b']);
    expect(filterRows(rows, { status: '', text: 'rate LIMIT' }).map((r) => r.id)).toEqual(['b']);
    expect(filterRows(rows, { status: '', text: 'qwen3' }).map((r) => r.id)).toEqual(['c']);
    expect(filterRows(rows, { status: '', text: '' }).length).toBe(3);
  });
});
