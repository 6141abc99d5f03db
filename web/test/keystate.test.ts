import { describe, expect, it } from 'vitest';
import { causeWords, coolingOf, keyState, type KeyStateInput } from '../src/lib/keystate';
import { initialLiveState, reduceLive, type LiveKey } from '../src/lib/live';

const NOW = 1_700_000_000_000;

const fresh: KeyStateInput = { enabled: true, status: 'unknown', status_reason: null, live_status: 'unknown', cooldowns: [] };
const snapshotKey = (over: Partial<LiveKey> = {}): LiveKey => ({ id: 'k1', status: 'healthy', rpm_used: 0, tpm_used: 0, source: 'snapshot', ...over });

describe('keyState', () => {
  it('a key never checked nor used is "not checked yet", grey, even when the snapshot says healthy', () => {
    for (const live of [undefined, snapshotKey()]) {
      const s = keyState({ ...fresh, live }, NOW);
      expect(s).toMatchObject({ kind: 'unknown', color: 'grey', word: 'not checked yet' });
    }
    // An older server without `live_status: "unknown"` but with the stored status.
    expect(keyState({ enabled: true, status: 'unknown' }, NOW).kind).toBe('unknown');
  });

  it('healthy only with evidence: the server saw it used or checked, a check event, or a success seen live', () => {
    expect(keyState({ ...fresh, live_status: 'healthy' }, NOW)).toMatchObject({ kind: 'healthy', color: 'green' });
    expect(keyState({ ...fresh, live: snapshotKey({ status: 'healthy', source: 'event' }) }, NOW).kind).toBe('healthy');
    expect(keyState({ ...fresh, live: snapshotKey({ last_ok_ms: NOW - 1000 }) }, NOW).kind).toBe('healthy');
  });

  it('a cooling key says why and until when', () => {
    const cooldowns = coolingOf([{ model: 'm', remaining_ms: 42_000, reason: 'server_error', message: '503 upstream overloaded' }], NOW);
    const s = keyState({ ...fresh, live_status: 'rate_limited', cooldowns }, NOW);
    expect(s).toMatchObject({ kind: 'cooling', color: 'amber', word: 'cooling: server errors', until_ms: NOW + 42_000, cause: 'server_error' });
    expect(s.detail).toContain('in 42 s');
  });

  it('takes the latest end and, for a live event, its reason', () => {
    const cooldowns = coolingOf([{ model: 'a', remaining_ms: 10_000, reason: 'rate_limited' }], NOW);
    const live = snapshotKey({ status: 'error', source: 'event', reason: 'network', cooldown_until_ms: NOW + 60_000 });
    expect(keyState({ ...fresh, cooldowns, live }, NOW)).toMatchObject({ word: 'cooling: connection error', until_ms: NOW + 60_000 });
    // From a snapshot the live cooldown has no reason: the list's is used.
    const fromSnapshot = snapshotKey({ status: 'rate_limited', cooldown_until_ms: NOW + 60_000 });
    expect(keyState({ ...fresh, cooldowns, live: fromSnapshot }, NOW).word).toBe('cooling: rate-limited');
  });

  it('a cooldown that ended puts the key back in rotation, not healthy', () => {
    const cooldowns = coolingOf([{ model: 'a', remaining_ms: 1000, reason: 'rate_limited' }], NOW);
    expect(keyState({ ...fresh, cooldowns }, NOW + 5000)).toMatchObject({ kind: 'recovered', color: 'grey' });
    expect(keyState({ ...fresh, live_status: 'cooldown_ended' }, NOW)).toMatchObject({ kind: 'recovered', word: 'back in rotation' });
  });

  it('an invalid key is excluded, with the stored reason, until a healthy check', () => {
    const s = keyState({ ...fresh, status: 'invalid', live_status: 'invalid', status_reason: '401 bad key' }, NOW);
    expect(s).toMatchObject({ kind: 'invalid', color: 'red', word: 'excluded' });
    expect(s.detail).toContain('401 bad key');
    expect(keyState({ ...fresh, live: snapshotKey({ status: 'invalid' }) }, NOW).word).toBe('excluded');
    const rechecked = snapshotKey({ status: 'healthy', source: 'event' });
    expect(keyState({ ...fresh, status: 'invalid', live_status: 'invalid', live: rechecked }, NOW).kind).toBe('healthy');
  });

  it('disabled wins over everything', () => {
    expect(keyState({ ...fresh, enabled: false, status: 'invalid' }, NOW)).toMatchObject({ kind: 'disabled', word: 'disabled' });
  });

  it('the last check verdict when nothing newer is known', () => {
    expect(keyState({ ...fresh, live_status: 'error', status: 'error', status_reason: '500 oops' }, NOW)).toMatchObject({ kind: 'error', color: 'red' });
    expect(keyState({ ...fresh, live_status: 'rate_limited', status: 'rate_limited' }, NOW)).toMatchObject({ kind: 'limited', color: 'amber' });
  });
});

describe('causeWords', () => {
  it('names each failure class', () => {
    expect(causeWords('rate_limited')).toBe('rate-limited');
    expect(causeWords('quota_exhausted')).toBe('quota used up');
    expect(causeWords('server_error')).toBe('server errors');
    expect(causeWords('network')).toBe('connection error');
    expect(causeWords('timeout', 'no response headers within 30000 ms')).toBe('timed out');
    expect(causeWords('timeout', 'no content, tool or reasoning delta within 8000 ms')).toBe('stalled stream');
    expect(causeWords('unreachable')).toBe('no answer (timeout, connection error or stalled stream)');
    expect(causeWords('set_by_another_instance')).toBe('a failure another gateway instance saw');
    expect(causeWords(null)).toBe('reason not recorded yet');
    expect(causeWords('something_new')).toBe('something new');
  });
});

describe('live evidence', () => {
  it('a snapshot marks its statuses as such; a key.status event as news', () => {
    let s = reduceLive(initialLiveState(), { type: 'snapshot', keys: [{ id: 'k1', status: 'healthy', rpm_used: 0, tpm_used: 0 }] }, NOW);
    expect(s.keys.k1.source).toBe('snapshot');
    s = reduceLive(s, { type: 'key.status', key_id: 'k1', status: 'rate_limited', reason: 'rate_limited', cooldown_until_ms: NOW + 30_000 }, NOW);
    expect(s.keys.k1).toMatchObject({ source: 'event', reason: 'rate_limited' });
  });

  it('a successful request marks the key that served it; a later failure event clears that', () => {
    let s = reduceLive(initialLiveState(), { type: 'request.started', req_id: 'r', requested_model: 'm', stream: false, input_tokens: 1, ts_ms: NOW }, NOW);
    s = reduceLive(s, { type: 'request.attempt', req_id: 'r', attempt: 1, provider: 'custom', model: 'm', key_id: 'k9', ts_ms: NOW }, NOW);
    s = reduceLive(s, { type: 'request.finished', req_id: 'r', status: 'success', latency_ms: 5, input_tokens: 1, output_tokens: 2, attempts: 1 }, NOW);
    expect(s.keys.k9.last_ok_ms).toBe(NOW);
    expect(keyState({ ...fresh, live: s.keys.k9 }, NOW).kind).toBe('healthy');
    // A resync keeps it.
    s = reduceLive(s, { type: 'snapshot', keys: [{ id: 'k9', status: 'healthy', rpm_used: 1, tpm_used: 3 }] }, NOW);
    expect(s.keys.k9.last_ok_ms).toBe(NOW);
    s = reduceLive(s, { type: 'key.status', key_id: 'k9', status: 'error', reason: 'server_error', cooldown_until_ms: NOW + 10_000 }, NOW);
    expect(s.keys.k9.last_ok_ms).toBeUndefined();
    expect(keyState({ ...fresh, live: s.keys.k9 }, NOW + 20_000).kind).toBe('recovered');
  });
});
