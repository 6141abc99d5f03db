import { useMemo, useState } from 'preact/hooks';
import { api, ApiError, listOf, type Profile, type Strategy } from '../lib/api';
import { loadCatalog } from '../lib/catalog';
import { linkClick, navigate } from '../lib/router';
import { formatInt } from '../lib/format';
import { ConfirmButton, Empty, ErrorNote, Field, LoadState, PageHeader, Section, toast, Unavailable, useAsync } from '../components/ui';

const STRATEGIES: { id: Strategy; label: string; hint: string }[] = [
  { id: 'failover', label: 'Failover', hint: 'Try the models in order; the next one only when the previous fails.' },
  { id: 'round-robin', label: 'Round-robin', hint: 'Spread requests evenly over the models.' },
  { id: 'least-latency', label: 'Least latency', hint: 'Prefer the model that has been answering fastest.' },
  { id: 'score', label: 'Best key', hint: 'Every key of every model, best first, as for one model: for the same model on several platforms.' },
];

/** Chat models and model groups the user's keys serve (profiles and embedding models cannot be members). */
async function loadModelIds(signal: AbortSignal): Promise<string[]> {
  const { list } = await loadCatalog(signal);
  return list.filter((m) => (m.kind === 'model' || m.kind === 'group') && !m.embedding).map((m) => m.id);
}

/** Opens the playground with this model selected (the playground keeps its settings in localStorage). */
function tryInPlayground(name: string) {
  try {
    const key = 'freellmapi.playground';
    const s = JSON.parse(localStorage.getItem(key) ?? '{}');
    localStorage.setItem(key, JSON.stringify({ ...s, model: name }));
  } catch {
    /* storage unavailable: the playground opens with its default */
  }
  navigate('/playground');
}

export function ProfilesPage() {
  const profiles = useAsync((signal) => api<unknown>('GET', '/api/profiles', undefined, { signal }).then((b) => listOf<Profile>(b)), []);
  const models = useAsync(loadModelIds, []);
  const [editing, setEditing] = useState<Profile | 'new' | null>(null);

  if (profiles.error instanceof ApiError && profiles.error.unavailable) {
    return (
      <div class="page">
        <PageHeader title="Profiles" />
        <Unavailable what="AI profiles" />
      </div>
    );
  }

  const saved = (p: Profile) => {
    profiles.setData((list) => {
      const l = list ?? [];
      return l.some((x) => x.id === p.id) ? l.map((x) => (x.id === p.id ? p : x)) : [...l, p];
    });
    setEditing(null);
  };

  return (
    <div class="page">
      <PageHeader title="Profiles">
        {editing === null && (
          <button type="button" class="btn btn-primary" onClick={() => setEditing('new')}>
            New profile
          </button>
        )}
      </PageHeader>
      <p class="lede">
        A profile is a virtual model: clients ask for its name and the gateway routes across its list of real models with the
        strategy you choose. Profiles appear in <code>/v1/models</code>.
      </p>
      {editing !== null && (
        <ProfileForm
          profile={editing === 'new' ? null : editing}
          models={models.data ?? []}
          onCancel={() => setEditing(null)}
          onSaved={saved}
        />
      )}
      <Section title="Your profiles" id="profiles-title">
        <LoadState a={profiles} what="Profiles" />
        {profiles.data && profiles.data.length === 0 && (
          <Empty title="No profiles yet">
            Create one to give a group of models a single name, e.g. <code>coding</code> → Qwen3 Coder, Devstral, Codestral.
          </Empty>
        )}
        {profiles.data && profiles.data.length > 0 && (
          <ul class="profile-list">
            {profiles.data.map((p) => (
              <li key={p.id} class="profile-row">
                <div>
                  <div class="profile-name mono">
                    {p.name}
                    {p.source === 'config' && <span class="tag tag-muted">config file</span>}
                  </div>
                  <div class="muted small">
                    {STRATEGIES.find((s) => s.id === p.strategy)?.label ?? p.strategy} · {p.models.length} model{p.models.length === 1 ? '' : 's'}
                    {p.context_window ? ` · ${formatInt(p.context_window)} context` : ''}
                    {p.stats_24h ? ` · ${formatInt(p.stats_24h.requests)} request${p.stats_24h.requests === 1 ? '' : 's'}, ${formatInt(p.stats_24h.errors)} error${p.stats_24h.errors === 1 ? '' : 's'} in 24 h` : ''}
                  </div>
                  <ul class="chips">
                    {p.models.map((m) => {
                      const unreachable = p.reachable_models !== undefined && !p.reachable_models.includes(m);
                      return (
                        <li key={m} class={`chip mono ${unreachable ? 'chip-warn' : ''}`} title={unreachable ? 'No enabled key serves this model: the router skips it' : undefined}>
                          {m}
                          {unreachable && <span class="sr-only"> (no enabled key serves it)</span>}
                        </li>
                      );
                    })}
                  </ul>
                  {p.reachable_models !== undefined && p.reachable_models.length === 0 && (
                    <p class="small status-red">No enabled key serves any of these models: requests for this profile fail.</p>
                  )}
                </div>
                <div class="row-buttons">
                  <button type="button" class="btn btn-small" onClick={() => tryInPlayground(p.name)} aria-label={`Try ${p.name} in the playground`}>
                    Try
                  </button>
                  <a class="btn btn-small" href={`/keys/routing?model=${encodeURIComponent(p.name)}`} onClick={linkClick} aria-label={`Routing of ${p.name}`}>
                    Routing
                  </a>
                  <button type="button" class="btn btn-small" onClick={() => setEditing(p)}>
                    Edit
                  </button>
                  <ConfirmButton
                    label="Delete"
                    confirmLabel={`Delete ${p.name}`}
                    onConfirm={async () => {
                      try {
                        await api('DELETE', `/api/profiles/${encodeURIComponent(p.id)}`);
                        profiles.setData((l) => (l ?? []).filter((x) => x.id !== p.id));
                        toast(`Deleted profile ${p.name}`);
                      } catch (e) {
                        toast((e as Error).message, 'error');
                      }
                    }}
                  />
                </div>
              </li>
            ))}
          </ul>
        )}
      </Section>
    </div>
  );
}

function ProfileForm({
  profile,
  models,
  onCancel,
  onSaved,
}: {
  profile: Profile | null;
  models: string[];
  onCancel: () => void;
  onSaved: (p: Profile) => void;
}) {
  const [name, setName] = useState(profile?.name ?? '');
  const [strategy, setStrategy] = useState<Strategy>(profile?.strategy ?? 'failover');
  const [chosen, setChosen] = useState<string[]>(profile?.models ?? []);
  const [search, setSearch] = useState('');
  const [custom, setCustom] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const candidates = useMemo(() => {
    const q = search.trim().toLowerCase();
    return models.filter((m) => !chosen.includes(m) && (!q || m.toLowerCase().includes(q))).slice(0, 50);
  }, [models, chosen, search]);

  const move = (i: number, d: -1 | 1) => {
    const j = i + d;
    if (j < 0 || j >= chosen.length) return;
    const next = [...chosen];
    [next[i], next[j]] = [next[j], next[i]];
    setChosen(next);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    if (chosen.length === 0) {
      setError(new Error('Add at least one model to the profile.'));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body = { name: name.trim(), strategy, models: chosen };
      const p = profile
        ? await api<Profile>('PATCH', `/api/profiles/${encodeURIComponent(profile.id)}`, body)
        : await api<Profile>('POST', '/api/profiles', body);
      toast(profile ? `Saved ${body.name}` : `Created profile ${body.name}`);
      onSaved(p ?? { id: profile?.id ?? body.name, ...body });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title={profile ? `Edit ${profile.name}` : 'New profile'} id="profile-form-title">
      <form class="form-stack" onSubmit={submit}>
        {profile?.source === 'config' && (
          <p class="note note-info" role="note">
            This profile comes from the configuration file: the file's version comes back at the next start.
          </p>
        )}
        <div class="form-grid">
          <Field label="Name" id="pf-name" hint="What clients send as `model`, e.g. coding or fast-chat.">
            <input id="pf-name" class="input mono" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </Field>
          <fieldset class="field">
            <legend>Strategy</legend>
            {STRATEGIES.map((s) => (
              <label key={s.id} class="radio">
                <input type="radio" name="pf-strategy" value={s.id} checked={strategy === s.id} onChange={() => setStrategy(s.id)} />
                <span>
                  <strong>{s.label}</strong> <span class="muted small">{s.hint}</span>
                </span>
              </label>
            ))}
          </fieldset>
        </div>
        <div class="two-col">
          <div>
            <h3 class="subhead">Models in this profile ({chosen.length})</h3>
            {chosen.length === 0 ? (
              <p class="muted">None yet: pick from the list or type a model id.</p>
            ) : (
              <ol class="picked">
                {chosen.map((m, i) => (
                  <li key={m}>
                    <span class="mono">{m}</span>
                    <span class="row-buttons">
                      <button type="button" class="btn btn-small btn-icon" aria-label={`Move ${m} up`} disabled={i === 0} onClick={() => move(i, -1)}>
                        ↑
                      </button>
                      <button type="button" class="btn btn-small btn-icon" aria-label={`Move ${m} down`} disabled={i === chosen.length - 1} onClick={() => move(i, 1)}>
                        ↓
                      </button>
                      <button type="button" class="btn btn-small" aria-label={`Remove ${m}`} onClick={() => setChosen(chosen.filter((x) => x !== m))}>
                        Remove
                      </button>
                    </span>
                  </li>
                ))}
              </ol>
            )}
          </div>
          <div>
            <Field label="Find a model" id="pf-search">
              <input id="pf-search" type="search" class="input" placeholder="Search your models" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
            </Field>
            {models.length === 0 ? (
              <p class="muted small">No models known yet: add provider keys first, or type an id below.</p>
            ) : (
              <ul class="pick-list" aria-label="Available models">
                {candidates.map((m) => (
                  <li key={m}>
                    <button type="button" class="btn btn-small btn-ghost" onClick={() => setChosen([...chosen, m])}>
                      + <span class="mono">{m}</span>
                    </button>
                  </li>
                ))}
                {candidates.length === 0 && <li class="muted small">No match.</li>}
              </ul>
            )}
            <div class="inline-create">
              <Field label="Or type a model id" id="pf-custom">
                <input id="pf-custom" class="input mono" value={custom} onInput={(e) => setCustom(e.currentTarget.value)} />
              </Field>
              <button
                type="button"
                class="btn"
                disabled={!custom.trim()}
                onClick={() => {
                  const m = custom.trim();
                  if (m && !chosen.includes(m)) setChosen([...chosen, m]);
                  setCustom('');
                }}
              >
                Add
              </button>
            </div>
          </div>
        </div>
        <ErrorNote error={error} title="Could not save the profile" />
        <div class="form-actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Saving…' : profile ? 'Save profile' : 'Create profile'}
          </button>
          <button type="button" class="btn" onClick={onCancel}>
            Cancel
          </button>
        </div>
      </form>
    </Section>
  );
}
