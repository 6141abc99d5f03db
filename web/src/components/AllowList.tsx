// The model allow-list editor of a gateway key: every model, or only the ticked ones among the user's profiles and
// models (the catalog the playground and routing inspector use), with a free-text id for anything else.
import { useMemo, useState } from 'preact/hooks';
import type { Catalog } from '../lib/catalog';
import { allowListBody, allowListChoices, filterChoices } from '../lib/gatewaykeys';
import { ErrorNote, Field, Loading, type Async } from './ui';

export function AllowListEditor({
  label,
  current,
  catalog,
  onSave,
  onCancel,
}: {
  label: string;
  current: string[] | null;
  catalog: Async<Catalog>;
  onSave: (list: string[] | null) => Promise<void>;
  onCancel: () => void;
}) {
  const [mode, setMode] = useState<'all' | 'only'>(current && current.length > 0 ? 'only' : 'all');
  const [chosen, setChosen] = useState<string[]>(current ?? []);
  const [query, setQuery] = useState('');
  const [custom, setCustom] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const choices = useMemo(() => allowListChoices(catalog.data?.list ?? [], current), [catalog.data, current]);
  const shown = filterChoices(choices, query, chosen);
  const extra = chosen.filter((m) => !choices.some((c) => c.id === m));
  const base = `allow-${label.replace(/[^a-z0-9]+/gi, '-')}`;

  const toggle = (id: string, on: boolean) => setChosen(on ? [...chosen.filter((m) => m !== id), id] : chosen.filter((m) => m !== id));

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let list: string[] | null;
    try {
      list = allowListBody(mode, chosen);
    } catch (err) {
      setError(err);
      return;
    }
    setBusy(true);
    try {
      await onSave(list);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="form-stack allow-editor" onSubmit={submit} aria-label={`Models ${label} may use`}>
      <fieldset class="field">
        <legend>Models {label} may use</legend>
        <label class="radio">
          <input type="radio" name={`${base}-mode`} checked={mode === 'all'} onChange={() => setMode('all')} />
          <span>
            <strong>All models</strong> <span class="muted small">every model and profile of yours, now and later</span>
          </span>
        </label>
        <label class="radio">
          <input type="radio" name={`${base}-mode`} checked={mode === 'only'} onChange={() => setMode('only')} />
          <span>
            <strong>Only these</strong> <span class="muted small">other models get 403; auto chooses among these</span>
          </span>
        </label>
      </fieldset>
      {mode === 'only' && (
        <>
          {catalog.loading && !catalog.data && <Loading label="Loading your models…" />}
          {catalog.error && !catalog.data ? <ErrorNote error={catalog.error} title="Could not load your models; type ids below" /> : null}
          {choices.length > 8 && (
            <Field label="Find a model" id={`${base}-search`}>
              <input id={`${base}-search`} type="search" class="input" value={query} placeholder="Search your models" onInput={(e) => setQuery(e.currentTarget.value)} />
            </Field>
          )}
          {catalog.data && choices.length === 0 && <p class="muted small">No models known yet: add provider keys first, or type an id below.</p>}
          {shown.length > 0 && (
            <div class="check-grid allow-list" role="group" aria-label="Your models">
              {shown.map((c) => (
                <label key={c.id} class="check">
                  <input type="checkbox" checked={chosen.includes(c.id)} onChange={(e) => toggle(c.id, e.currentTarget.checked)} />
                  <span class="mono">{c.id}</span>
                  {c.kind === 'profile' && <span class="tag tag-muted">profile</span>}
                  {c.kind === 'group' && <span class="tag tag-muted" title="The same model on several platforms">group</span>}
                  {c.kind === 'missing' && (
                    <span class="tag tag-warn" title="No enabled key of yours serves it now">
                      not served now
                    </span>
                  )}
                </label>
              ))}
            </div>
          )}
          {extra.length > 0 && (
            <ul class="chips" aria-label="Typed model ids">
              {extra.map((m) => (
                <li key={m} class="chip mono">
                  {m}{' '}
                  <button type="button" class="btn btn-small btn-ghost" aria-label={`Remove ${m}`} onClick={() => toggle(m, false)}>
                    ×
                  </button>
                </li>
              ))}
            </ul>
          )}
          <div class="inline-create">
            <Field label="Or type a model id" id={`${base}-custom`}>
              <input id={`${base}-custom`} class="input mono" value={custom} onInput={(e) => setCustom(e.currentTarget.value)} />
            </Field>
            <button
              type="button"
              class="btn"
              disabled={!custom.trim()}
              onClick={() => {
                const m = custom.trim();
                if (m) toggle(m, true);
                setCustom('');
              }}
            >
              Add
            </button>
          </div>
          <p class="muted small">{chosen.length === 0 ? 'Nothing ticked yet.' : `${chosen.length} ticked.`}</p>
        </>
      )}
      <ErrorNote error={error} title="Could not save the allow-list" />
      <div class="form-actions">
        <button type="submit" class="btn btn-small btn-primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save models'}
        </button>
        <button type="button" class="btn btn-small" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}
