// Gateway keys' limits and model allow-lists as the Gateway keys page edits them (API: crates/server/src/api/
// gateway_keys.rs). Pure functions: unit-tested (test/gatewaykeys.test.ts).
import type { ModelEntry } from './api';
import { formatInt } from './format';

/** The largest limit the server takes (`u32::MAX`). */
export const MAX_LIMIT = 4_294_967_295;

/** A limit field as typed: empty (or 0, which the server reads the same) = no limit; otherwise a whole number. */
export function parseLimitInput(v: string): number | null {
  const t = v.trim().replace(/[,_\s]/g, '');
  if (t === '') return null;
  if (!/^\d+$/.test(t)) throw new Error('Enter a whole number, or leave the field empty for no limit');
  const n = Number(t);
  if (n > MAX_LIMIT) throw new Error(`At most ${formatInt(MAX_LIMIT)}`);
  return n === 0 ? null : n;
}

/** "no limit" or "1,000 / min" style text for a limit. */
export function limitText(n: number | null | undefined, unit: string): string {
  return n ? `${formatInt(n)} ${unit}` : 'no limit';
}

/** "all models", or "3 models". An empty list allows every model, as null does. */
export function allowListSummary(list: string[] | null | undefined): string {
  if (!list || list.length === 0) return 'all models';
  return `${list.length} model${list.length === 1 ? '' : 's'}`;
}

export interface AllowChoice {
  id: string;
  /** `missing`: on the allow-list but not among the user's models now (no key serves it, or a deleted profile). */
  kind: 'profile' | 'group' | 'model' | 'missing';
}

/** What an allow-list may pick from: the user's profiles and models (not `auto`, which always chooses among the
 * allowed ones), plus any entry of the current list that is not among them, first so it can be unticked. */
export function allowListChoices(catalog: ModelEntry[], current: string[] | null | undefined): AllowChoice[] {
  const seen = new Set<string>();
  const out: AllowChoice[] = [];
  const known = new Set(catalog.filter((m) => m.kind !== 'auto').map((m) => m.id));
  for (const id of current ?? []) {
    if (!known.has(id) && !seen.has(id)) {
      seen.add(id);
      out.push({ id, kind: 'missing' });
    }
  }
  const byId = (a: ModelEntry, b: ModelEntry) => a.id.localeCompare(b.id);
  for (const kind of ['profile', 'group', 'model'] as const) {
    for (const m of catalog.filter((x) => x.kind === kind).sort(byId)) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      out.push({ id: m.id, kind });
    }
  }
  return out;
}

/** Choices matching a search (case-insensitive substring); chosen ones always stay visible. */
export function filterChoices(choices: AllowChoice[], query: string, chosen: string[]): AllowChoice[] {
  const q = query.trim().toLowerCase();
  if (!q) return choices;
  return choices.filter((c) => chosen.includes(c.id) || c.id.toLowerCase().includes(q));
}

/** The `allowed_models` to send: null for every model; the chosen ids (trimmed, once each) otherwise. */
export function allowListBody(mode: 'all' | 'only', chosen: string[]): string[] | null {
  if (mode === 'all') return null;
  const list = [...new Set(chosen.map((m) => m.trim()).filter(Boolean))];
  if (list.length === 0) throw new Error('Pick at least one model, or choose “All models”.');
  return list;
}
