// What a user can ask for: `auto`, their profiles and the models their keys serve. `GET /api/models` lists `auto`
// and the models; profiles come from `GET /api/profiles` when the model list does not carry them (the server lists
// profiles in /v1/models but, today, not in /api/models).
import { api, listOf, type ModelEntry, type Profile, type ProviderKey } from './api';

export interface Catalog {
  list: ModelEntry[];
  /** `api`: from /api/models; `keys`: rebuilt from the provider keys (older server). */
  source: 'api' | 'keys';
}

/** Adds the profiles missing from `list` as `kind:"profile"` entries, after `auto`. */
export function mergeProfiles(list: ModelEntry[], profiles: Profile[]): ModelEntry[] {
  const known = new Set(list.map((m) => m.id));
  const extra: ModelEntry[] = profiles
    .filter((p) => !known.has(p.name))
    .map((p) => ({ id: p.name, kind: 'profile', context_window: p.context_window ?? null, providers: [] }));
  return [...list, ...extra];
}

export async function loadCatalog(signal: AbortSignal): Promise<Catalog> {
  const profiles = api<unknown>('GET', '/api/profiles', undefined, { signal }).then(
    (b) => listOf<Profile>(b),
    (e) => {
      if ((e as Error).name === 'AbortError') throw e;
      return [] as Profile[];
    },
  );
  try {
    const list = listOf<ModelEntry>(await api<unknown>('GET', '/api/models', undefined, { signal }));
    return { list: mergeProfiles(list, await profiles), source: 'api' };
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    const keys = listOf<ProviderKey>(await api<unknown>('GET', '/api/keys', undefined, { signal }));
    const ids = [...new Set(keys.filter((k) => k.enabled).flatMap((k) => k.models))].sort();
    const list: ModelEntry[] = [{ id: 'auto', kind: 'auto', providers: [] }, ...ids.map((id): ModelEntry => ({ id, kind: 'model', providers: [] }))];
    return { list: mergeProfiles(list, await profiles), source: 'keys' };
  }
}
