import { describe, expect, it } from 'vitest';
import type { RoutingCandidate } from '../src/lib/api';
import { sortCandidates, strategyWords } from '../src/lib/routing';

const cand = (key_id: string, status: RoutingCandidate['status'], score = 0.5): RoutingCandidate => ({
  key_id,
  key_label: key_id,
  provider: 'custom',
  model: 'm',
  priority: 0,
  status,
  score,
  inputs: { reliability: 1, samples: 0, latency_ms: null, headroom: 1 },
  limits: [],
});

describe('sortCandidates', () => {
  it('puts ready ones first by order, then cooling soonest first, capped, invalid', () => {
    const list = [
      cand('inv', { state: 'invalid' }),
      cand('cool-late', { state: 'cooling', remaining_ms: 9000 }),
      cand('r2', { state: 'ready', order: 2 }),
      cand('cap', { state: 'capped' }),
      cand('cool-soon', { state: 'cooling', remaining_ms: 1000 }),
      cand('r1', { state: 'ready', order: 1 }),
    ];
    expect(sortCandidates(list).map((c) => c.key_id)).toEqual(['r1', 'r2', 'cool-soon', 'cool-late', 'cap', 'inv']);
  });
});

describe('strategyWords', () => {
  it("reads the server's debug names", () => {
    expect(strategyWords('Score')).toBe('best score first');
    expect(strategyWords('RoundRobin { members: 2 }')).toBe('round-robin over the members');
    expect(strategyWords('LeastLatency')).toBe('least latency first');
    expect(strategyWords('Failover')).toBe('failover: members in order');
    expect(strategyWords('Other')).toBe('Other');
  });
});
