import { describe, expect, it } from 'vitest';
import { initialLiveState, queuedWords, reduceLive, successRate, MAX_EVENTS, type LiveState } from '../src/lib/live';


const NOW = 1_700_000_000_000;

function apply(msgs: unknown[], state: LiveState = initialLiveState()): LiveState {
  return msgs.reduce<LiveState>((s, m) => reduceLive(s, m, NOW), state);
}

const snapshot = {
  type: 'snapshot',
  in_flight: [
    { req_id: 'a', requested_model: 'auto', stream: true, started_at_ms: NOW - 500, input_tokens: 12, output_tokens: 3, provider: 'groq', model: 'llama', key_id: 'k1', proxy: null },
  ],
  totals: { requests: 10, success: 9, errors: 1, tokens_in: 1000, tokens_out: 2000 },
  queue_depth: 2,
  keys: [
    { id: 'k1', platform: 'groq', label: 'Groq', status: 'healthy', rpm_used: 3, rpm_limit: 30, tpm_used: 100, tpm_limit: null },
  ],
};

describe('reduceLive', () => {
  it('shows a queued request waiting, until its next attempt', () => {
    const started = { type: 'request.started', req_id: 'q', requested_model: 'm', stream: false, input_tokens: 5, ts_ms: NOW - 100 };
    const waiting = apply([started, { type: 'request.queued', req_id: 'q', until_ms: NOW + 8000 }]);
    expect(waiting.inFlight.q.queued_until_ms).toBe(NOW + 8000);
    expect(queuedWords(NOW + 8000, NOW)).toBe('queued — a key frees up in 8 s');
    expect(queuedWords(0, NOW)).toBe('queued — waiting for its turn');
    const running = apply([{ type: 'request.attempt', req_id: 'q', attempt: 1, provider: 'groq', model: 'llama', key_id: 'k1' }], waiting);
    expect(running.inFlight.q.queued_until_ms).toBeNull();
  });

  it('applies a snapshot', () => {
    const s = apply([snapshot]);
    expect(s.synced).toBe(true);
    expect(s.queueDepth).toBe(2);
    expect(Object.keys(s.inFlight)).toEqual(['a']);
    expect(s.inFlight.a).toMatchObject({ provider: 'groq', output_tokens: 3, attempt: 1 });
    expect(s.totals).toEqual({ requests: 10, success: 9, errors: 1, tokens_in: 1000, tokens_out: 2000 });
    expect(s.keys.k1).toMatchObject({ status: 'healthy', rpm_used: 3, rpm_limit: 30 });
    expect(successRate(s.totals)).toBeCloseTo(0.9);
  });

  it('a later snapshot replaces rows but keeps the event log', () => {
    let s = apply([snapshot, { type: 'request.started', req_id: 'b', requested_model: 'm', stream: false, input_tokens: 1, ts_ms: NOW }]);
    expect(s.events.length).toBe(1);
    s = apply([{ ...snapshot, in_flight: [] }], s);
    expect(s.inFlight).toEqual({});
    expect(s.events.length).toBe(1);
  });

  it('follows a request from start through attempts and token growth to finish', () => {
    let s = apply([
      snapshot,
      { type: 'request.started', req_id: 'r1', requested_model: 'auto', stream: true, input_tokens: 20, ts_ms: NOW - 100 },
      { type: 'request.attempt', req_id: 'r1', attempt: 1, provider: 'groq', model: 'llama', key_id: 'k1', ts_ms: NOW - 90 },
      { type: 'request.attempt_failed', req_id: 'r1', attempt: 1, provider: 'groq', model: 'llama', key_id: 'k1', error_class: 'rate_limited', status: 429, message: 'slow down', latency_ms: 40, cooldown_ms: 30000 },
      { type: 'request.attempt', req_id: 'r1', attempt: 2, provider: 'cerebras', model: 'qwen', key_id: 'k2', proxy: 'fr-1', ts_ms: NOW - 50 },
      { type: 'request.tokens', req_id: 'r1', output_tokens: 5 },
      { type: 'request.tokens', req_id: 'r1', output_tokens: 17 },
    ]);
    expect(Object.keys(s.inFlight).sort()).toEqual(['a', 'r1']);
    expect(s.inFlight.r1).toMatchObject({
      attempt: 2,
      provider: 'cerebras',
      model: 'qwen',
      proxy: 'fr-1',
      input_tokens: 20,
      output_tokens: 17,
      started_at_ms: NOW - 100,
      last_error: 'slow down',
    });
    expect(s.events.map((e) => e.kind)).toEqual(['attempt', 'cooldown', 'failure', 'attempt', 'started']);

    // Token counts never go backwards.
    s = apply([{ type: 'request.tokens', req_id: 'r1', output_tokens: 4 }], s);
    expect(s.inFlight.r1.output_tokens).toBe(17);

    s = apply(
      [{ type: 'request.finished', req_id: 'r1', status: 'success', provider: 'cerebras', model: 'qwen', latency_ms: 900, input_tokens: 20, output_tokens: 40, attempts: 2 }],
      s,
    );
    expect(s.inFlight.r1).toBeUndefined();
    expect(s.recent[0]).toMatchObject({ req_id: 'r1', status: 'success', attempts: 2, output_tokens: 40, requested_model: 'auto', proxy: 'fr-1' });
    expect(s.totals).toEqual({ requests: 11, success: 10, errors: 1, tokens_in: 1020, tokens_out: 2040 });
    expect(s.session).toEqual({ requests: 1, tokens_in: 20, tokens_out: 40 });
  });

  it('counts errors and cancellations', () => {
    const s = apply([
      { type: 'request.started', req_id: 'x', requested_model: 'm', stream: false, input_tokens: 1, ts_ms: NOW },
      { type: 'request.finished', req_id: 'x', status: 'error', latency_ms: 5, input_tokens: 1, output_tokens: 0, attempts: 3, error_code: 'all_providers_failed' },
      { type: 'request.started', req_id: 'y', requested_model: 'm', stream: false, input_tokens: 1, ts_ms: NOW },
      { type: 'request.finished', req_id: 'y', status: 'canceled', latency_ms: 5, input_tokens: 1, output_tokens: 0, attempts: 1 },
    ]);
    expect(s.totals).toMatchObject({ requests: 2, success: 0, errors: 1 });
    expect(successRate(s.totals)).toBe(0);
    expect(successRate({ ...s.totals, success: 3 })).toBe(0.75);
    expect(successRate(initialLiveState().totals)).toBeNull();
    expect(s.inFlight).toEqual({});
    expect(s.recent.map((r) => r.status)).toEqual(['canceled', 'error']);
    expect(s.recent[1].error_code).toBe('all_providers_failed');
    expect(s.events.find((e) => e.req_id === 'x' && e.kind === 'finished')?.text).toContain('all_providers_failed');
  });

  it('creates a row for an attempt whose start was missed, and ignores tokens for unknown requests', () => {
    let s = apply([{ type: 'request.attempt', req_id: 'z', attempt: 1, provider: 'p', model: 'm', key_id: 'k', ts_ms: NOW }]);
    expect(s.inFlight.z).toMatchObject({ provider: 'p', attempt: 1 });
    const before = s;
    s = apply([{ type: 'request.tokens', req_id: 'nope', output_tokens: 9 }], s);
    expect(s).toBe(before);
  });

  it('updates key status and gauges', () => {
    let s = apply([snapshot, { type: 'key.status', key_id: 'k1', status: 'rate_limited', reason: '429', cooldown_until_ms: NOW + 30000 }]);
    expect(s.keys.k1).toMatchObject({ status: 'rate_limited', cooldown_until_ms: NOW + 30000, rpm_used: 3 });
    expect(s.events[0]).toMatchObject({ kind: 'cooldown', key_id: 'k1' });
    s = apply([{ type: 'ratelimit.gauge', key_id: 'k1', rpm_used: 7, tpm_used: 900 }], s);
    expect(s.keys.k1).toMatchObject({ rpm_used: 7, rpm_limit: 30, tpm_used: 900 });
    s = apply([{ type: 'ratelimit.gauge', key_id: 'k9', rpm_used: 1, rpm_limit: 10, tpm_used: 0 }], s);
    expect(s.keys.k9).toMatchObject({ status: 'unknown', rpm_limit: 10 });
  });

  it('ignores unknown and malformed messages', () => {
    const s0 = initialLiveState();
    expect(reduceLive(s0, { type: 'proxy.status' }, NOW)).toBe(s0);
    expect(reduceLive(s0, null, NOW)).toBe(s0);
    expect(reduceLive(s0, { type: 'request.started' }, NOW)).toBe(s0);
  });

  it('caps the event log', () => {
    const msgs = Array.from({ length: MAX_EVENTS + 50 }, (_, i) => ({
      type: 'request.started', req_id: `r${i}`, requested_model: 'm', stream: false, input_tokens: 0, ts_ms: NOW,
    }));
    const s = apply(msgs);
    expect(s.events.length).toBe(MAX_EVENTS);
    expect(s.events[0].req_id).toBe(`r${MAX_EVENTS + 49}`);
  });
});
