// Pure helpers of the routing inspector (unit-tested in test/routing.test.ts).
import type { RoutingCandidate } from './api';

const STATE_RANK: Record<string, number> = { ready: 0, cooling: 1, capped: 2, invalid: 3 };

/** Candidates in the order the next request would try them: ready ones by order, then cooling (soonest first), capped, invalid. */
export function sortCandidates(list: RoutingCandidate[]): RoutingCandidate[] {
  return [...list].sort((a, b) => {
    const ra = STATE_RANK[a.status.state] ?? 4;
    const rb = STATE_RANK[b.status.state] ?? 4;
    if (ra !== rb) return ra - rb;
    if (a.status.state === 'ready') return (a.status as { order: number }).order - (b.status as { order: number }).order;
    if (a.status.state === 'cooling') return (a.status as { remaining_ms: number }).remaining_ms - (b.status as { remaining_ms: number }).remaining_ms;
    return b.score - a.score;
  });
}

/** The server's strategy name (Rust debug form, e.g. `RoundRobin { members: 2 }`) in words. */
export function strategyWords(s: string): string {
  if (/^score/i.test(s)) return 'best score first';
  if (/^failover/i.test(s)) return 'failover: members in order';
  if (/^round-?robin/i.test(s)) return 'round-robin over the members';
  if (/^least-?latency/i.test(s)) return 'least latency first';
  return s;
}

