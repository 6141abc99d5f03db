import { useMemo, useState } from 'preact/hooks';
import { api, ApiError, listOf, type KeyStats, type Platform, type ProviderKey } from '../lib/api';
import { formatDateTime, formatDuration, formatInt, formatPercent, formatTime, formatUntil } from '../lib/format';
import { causeWords, coolingOf, keyState } from '../lib/keystate';
import { useLive } from '../lib/ws';
import { KeysTabs } from './Routing';
import {
  Bars,
  ConfirmButton,
  Empty,
  ErrorNote,
  Field,
  InlineEdit,
  Loading,
  LoadState,
  Notice,
  PageHeader,
  Section,
  StatusDot,
  Switch,
  Unavailable,
  toast,
  useAsync,
  useNow,
} from '../components/ui';

export function KeysPage() {
  const platforms = useAsync((signal) => api<unknown>('GET', '/api/platforms', undefined, { signal }).then((b) => listOf<Platform>(b)), []);
  const keys = useAsync((signal) => api<unknown>('GET', '/api/keys', undefined, { signal }).then((b) => listOf<ProviderKey>(b)), []);
  const [query, setQuery] = useState('');

  const replaceKey = (k: ProviderKey) => keys.setData((list) => (list ?? []).map((x) => (x.id === k.id ? { ...x, ...k } : x)));
  const removeKey = (id: string) => keys.setData((list) => (list ?? []).filter((x) => x.id !== id));

  const filtered = useMemo(() => {
    const q = query.trim().toLowerCase();
    const list = keys.data ?? [];
    if (!q) return list;
    return list.filter((k) =>
      [k.label, k.platform, k.platform_name, k.base_url ?? '', k.masked_key ?? '', ...k.models].some((s) => s.toLowerCase().includes(q)),
    );
  }, [keys.data, query]);

  return (
    <div class="page">
      <PageHeader title="Provider keys" />
      <KeysTabs current="keys" />
      <p class="lede">
        Upstream API keys the gateway routes between. Each request tries the keys that serve the requested model and fails
        over when one is rate-limited or down.
      </p>

      {platforms.data && keys.data && <Checklist platforms={platforms.data} keys={keys.data} />}

      <Section title="Add a provider key" id="add-key-title">
        <LoadState a={platforms} what="Platforms" />
        {platforms.data && (
          <AddKeyForm
            platforms={platforms.data}
            onAdded={(k) => keys.setData((list) => [...(list ?? []), k])}
          />
        )}
      </Section>

      <Section
        title="Your keys"
        id="keys-list-title"
        actions={
          (keys.data?.length ?? 0) > 0 ? (
            <input
              type="search"
              class="input input-small"
              placeholder="Search keys and models"
              aria-label="Search keys and models"
              value={query}
              onInput={(e) => setQuery(e.currentTarget.value)}
            />
          ) : null
        }
      >
        <LoadState a={keys} what="Provider keys" />
        {keys.data && keys.data.length === 0 && (
          <Empty title="No provider keys yet — add one to start routing">
            Pick a platform above and paste its API key. Keyless platforms (Kilo, Pollinations, LLM7, OVH) need no key, and a
            custom endpoint can point at any OpenAI-compatible server such as llama.cpp, vLLM or LM Studio.
          </Empty>
        )}
        {keys.data && keys.data.length > 0 && filtered.length === 0 && <Empty title={`No key matches “${query}”`} />}
        {filtered.length > 0 && (
          <ul class="key-list" aria-label="Provider keys">
            {filtered.map((k) => (
              <KeyRow key={k.id} k={k} onChange={replaceKey} onDelete={() => removeKey(k.id)} />
            ))}
          </ul>
        )}
      </Section>
    </div>
  );
}

function Checklist({ platforms, keys }: { platforms: Platform[]; keys: ProviderKey[] }) {
  const providers = platforms.filter((p) => p.id !== 'custom');
  const served = providers.filter((p) => p.served);
  const configured = (id: string) => keys.some((k) => k.platform === id && k.enabled);
  const done = served.filter((p) => configured(p.id)).length;
  const customCount = keys.filter((k) => k.platform === 'custom').length;
  return (
    <Section
      title={`${done} of ${served.length} providers configured${customCount ? ` · ${customCount} custom endpoint${customCount === 1 ? '' : 's'}` : ''}`}
      id="checklist-title"
    >
      <div class="progress" role="progressbar" aria-valuemin={0} aria-valuemax={served.length} aria-valuenow={done} aria-label="Providers configured">
        <div class="progress-fill" style={{ width: `${served.length ? (done / served.length) * 100 : 0}%` }} />
      </div>
      <ul class="checklist">
        {providers.map((p) => {
          const ok = configured(p.id);
          return (
            <li key={p.id} class={ok ? 'done' : p.served ? '' : 'unserved'}>
              <span class="check" aria-hidden="true">
                {ok ? '✓' : p.served ? '○' : '–'}
              </span>
              <span class="cl-name">
                {p.name}
                {p.keyless && <span class="tag">no key needed</span>}
                {!p.served && <span class="tag tag-muted">not supported yet</span>}
                <span class="sr-only">{ok ? ' (configured)' : p.served ? ' (not configured)' : ''}</span>
              </span>
            </li>
          );
        })}
        <li class={customCount ? 'done' : ''}>
          <span class="check" aria-hidden="true">
            {customCount ? '✓' : '+'}
          </span>
          <span class="cl-name">
            Custom endpoints <span class="tag tag-muted">{customCount ? `${customCount} added` : 'optional'}</span>
          </span>
        </li>
      </ul>
    </Section>
  );
}

function parseModels(s: string): string[] {
  return s
    .split(/[\n,]/)
    .map((m) => m.trim())
    .filter(Boolean);
}

function AddKeyForm({ platforms, onAdded }: { platforms: Platform[]; onAdded: (k: ProviderKey) => void }) {
  const served = platforms.filter((p) => p.served);
  const [platform, setPlatform] = useState(served[0]?.id ?? '');
  const [key, setKey] = useState('');
  const [showKey, setShowKey] = useState(false);
  const [label, setLabel] = useState('');
  const [baseUrl, setBaseUrl] = useState('');
  const [models, setModels] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const info = platforms.find((p) => p.id === platform);
  const isCustom = platform === 'custom';
  const keyless = info?.keyless ?? false;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    const body: Record<string, unknown> = { platform };
    if (!keyless && key.trim()) body.key = key.trim();
    if (label.trim()) body.label = label.trim();
    if (baseUrl.trim()) body.base_url = baseUrl.trim();
    const list = parseModels(models);
    if (list.length) body.models = list;
    try {
      const k = await api<ProviderKey>('POST', '/api/keys', body);
      onAdded(k);
      setKey('');
      setLabel('');
      setModels('');
      if (isCustom) setBaseUrl('');
      setNotice(k.notice ?? `Added ${k.label} with ${k.models.length} model${k.models.length === 1 ? '' : 's'}.`);
      toast(`Added ${k.label}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="form-grid" onSubmit={submit} aria-labelledby="add-key-title">
      <Field label="Platform" id="key-platform">
        <select id="key-platform" class="input" value={platform} onChange={(e) => setPlatform(e.currentTarget.value)}>
          {platforms.map((p) => (
            <option key={p.id} value={p.id} disabled={!p.served}>
              {p.name}
              {p.keyless ? ' (no key needed)' : ''}
              {!p.served ? ' (not supported yet)' : ''}
            </option>
          ))}
        </select>
      </Field>
      {!keyless && (
        <Field
          label={isCustom ? 'API key (optional)' : 'API key'}
          id="key-secret"
          hint={
            platform === 'cloudflare' ? (
              <>
                Cloudflare needs your account id and an API token joined by a colon: <code>account_id:token</code>.
              </>
            ) : platform === 'github' ? (
              'A GitHub personal access token with the models scope.'
            ) : isCustom ? (
              'Leave empty for servers that need no key.'
            ) : (
              'Stored encrypted (AES-256-GCM); only a masked form is ever shown again.'
            )
          }
        >
          <div class="input-group">
            <input
              id="key-secret"
              class="input mono"
              type={showKey ? 'text' : 'password'}
              autocomplete="off"
              spellcheck={false}
              required={!isCustom}
              placeholder={platform === 'cloudflare' ? 'account_id:api_token' : 'sk-…'}
              value={key}
              onInput={(e) => setKey(e.currentTarget.value)}
              aria-describedby="key-secret-hint"
            />
            <button type="button" class="btn" onClick={() => setShowKey(!showKey)} aria-pressed={showKey}>
              {showKey ? 'Hide' : 'Show'}
            </button>
          </div>
        </Field>
      )}
      {keyless && (
        <div class="field">
          <span class="label-like">API key</span>
          <p class="hint">{info?.name} needs no key: adding it makes the platform available to the router.</p>
        </div>
      )}
      <Field label="Label (optional)" id="key-label">
        <input id="key-label" class="input" value={label} placeholder={info?.name} onInput={(e) => setLabel(e.currentTarget.value)} />
      </Field>
      {isCustom ? (
        <Field label="Base URL" id="key-base" hint="The OpenAI-compatible root, ending in /v1, e.g. http://127.0.0.1:8080/v1">
          <input
            id="key-base"
            class="input mono"
            type="url"
            required
            placeholder="http://127.0.0.1:8080/v1"
            value={baseUrl}
            onInput={(e) => setBaseUrl(e.currentTarget.value)}
            aria-describedby="key-base-hint"
          />
        </Field>
      ) : (
        <details class="field advanced">
          <summary>Base URL override</summary>
          <Field label="Base URL (optional)" id="key-base" hint={info?.default_base_url ? `Default: ${info.default_base_url}` : undefined}>
            <input id="key-base" class="input mono" type="url" value={baseUrl} placeholder={info?.default_base_url ?? ''} onInput={(e) => setBaseUrl(e.currentTarget.value)} />
          </Field>
        </details>
      )}
      <Field label="Models (optional)" id="key-models" hint="One per line or comma-separated. Leave empty to discover them from the endpoint's /models list.">
        <textarea id="key-models" class="input mono" rows={2} value={models} onInput={(e) => setModels(e.currentTarget.value)} aria-describedby="key-models-hint" />
      </Field>
      <div class="form-actions">
        <button type="submit" class="btn btn-primary" disabled={busy || !platform}>
          {busy ? 'Adding…' : 'Add key'}
        </button>
      </div>
      <div class="form-feedback">
        <ErrorNote error={error} title="Could not add the key" />
        {notice && <Notice kind="ok">{notice}</Notice>}
      </div>
    </form>
  );
}

function KeyRow({ k, onChange, onDelete }: { k: ProviderKey; onChange: (k: ProviderKey) => void; onDelete: () => void }) {
  const { state } = useLive();
  const liveKey = state.keys[k.id];
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [showModels, setShowModels] = useState(false);
  const [showStats, setShowStats] = useState(false);
  const now = useNow(1000, k.cooldowns.length > 0 || !!liveKey?.cooldown_until_ms);
  // Cooldowns come as `remaining_ms` at the time the key was loaded.
  const loadedAt = useMemo(() => Date.now(), [k]);

  const cooldowns = useMemo(() => coolingOf(k.cooldowns, loadedAt), [k, loadedAt]);
  const st = keyState({ enabled: k.enabled, status: k.status, status_reason: k.status_reason, live_status: k.live_status, cooldowns, live: liveKey }, now);
  const color = st.color;

  const patch = async (body: Record<string, unknown>) => {
    const updated = await api<ProviderKey>('PATCH', `/api/keys/${encodeURIComponent(k.id)}`, body);
    onChange(updated);
  };

  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await fn();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  type CapField = 'rpm' | 'tpm' | 'rpd' | 'tpd';
  const override = (f: CapField): number | null | undefined =>
    k.limits?.[f] ?? (f === 'rpm' ? k.rpm_limit : f === 'tpm' ? k.tpm_limit : undefined);
  const saveCap = (f: CapField) => async (v: string) => {
    const n = v === '' ? null : Number(v);
    if (n !== null && (!Number.isInteger(n) || n < 0)) throw new Error('Enter a whole number, or leave empty for the default');
    await patch({ [`${f}_limit`]: n });
  };
  const CAPS: { f: CapField; short: string; long: string }[] = [
    { f: 'rpm', short: 'RPM', long: 'requests-per-minute cap' },
    { f: 'tpm', short: 'TPM', long: 'tokens-per-minute cap' },
    { f: 'rpd', short: 'RPD', long: 'requests-per-day cap' },
    { f: 'tpd', short: 'TPD', long: 'tokens-per-day cap' },
  ];
  const rpmNow = liveKey?.rpm_used ?? k.usage?.rpm;
  const tpmNow = liveKey?.tpm_used ?? k.usage?.tpm;

  return (
    <li class="key-row" data-testid="key-row">
      <div class="key-main">
        <StatusDot color={color} label={`Status: ${st.word}`} />
        <div class="key-title">
          <InlineEdit value={k.label} label="label" onSave={(v) => patch({ label: v })} />
          <div class="key-meta">
            <span class="tag">{k.platform_name}</span>
            {k.masked_key && <code class="mono">{k.masked_key}</code>}
            {k.source === 'config' && (
              <span class="tag tag-muted" title="Declared in the configuration file: edits here last until the next start">
                config file
              </span>
            )}
            <span class={`status-text status-${color}`} data-testid="key-state" data-state={st.kind} title={st.detail}>
              {st.word}
              {st.until_ms ? ` · back ${formatUntil(st.until_ms, now)}` : ''}
            </span>
          </div>
          {k.base_url && <div class="key-url mono">{k.base_url}</div>}
          {st.kind !== 'healthy' && st.kind !== 'disabled' && <div class={`key-reason key-reason-${st.color}`}>{st.detail}</div>}
        </div>
        <div class="key-actions">
          <Switch checked={k.enabled} label={k.enabled ? `Disable ${k.label}` : `Enable ${k.label}`} disabled={busy} onChange={(v) => run(() => patch({ enabled: v }))} />
        </div>
      </div>

      <div class="key-details">
        <div class="caps">
          {CAPS.map(({ f, short, long }) => {
            const own = override(f);
            const eff = k.effective_limits?.[f];
            return (
              <span class="cap" key={f}>
                <span class="cap-label" title={long}>
                  {short}
                </span>
                <InlineEdit
                  value={own === null || own === undefined ? '' : String(own)}
                  type="number"
                  label={long}
                  placeholder={eff ? `default ${formatInt(eff)}` : 'no cap'}
                  onSave={saveCap(f)}
                />
              </span>
            );
          })}
          {(rpmNow !== undefined || tpmNow !== undefined) && (
            <span class="cap muted">
              now {formatInt(rpmNow ?? 0)} rpm · {formatInt(tpmNow ?? 0)} tpm
            </span>
          )}
        </div>
        <div class="row-buttons">
          <button type="button" class="btn btn-small" aria-expanded={showModels} onClick={() => setShowModels(!showModels)}>
            {k.models.length} model{k.models.length === 1 ? '' : 's'}
          </button>
          <button
            type="button"
            class="btn btn-small"
            disabled={busy}
            onClick={() =>
              run(async () => {
                const res = await api<ProviderKey>('POST', `/api/keys/${encodeURIComponent(k.id)}/discover`, {});
                onChange(res);
                const added = res.discovered?.added ?? [];
                const gone = res.discovered?.not_listed_by_endpoint ?? [];
                setNotice(
                  `${added.length ? `Added ${added.length} model${added.length === 1 ? '' : 's'}: ${added.join(', ')}.` : 'No new models.'}${
                    gone.length ? ` Not listed by the endpoint any more (kept): ${gone.join(', ')}.` : ''
                  }`,
                );
              })
            }
          >
            {busy ? 'Working…' : 'Discover models'}
          </button>
          <button
            type="button"
            class="btn btn-small"
            disabled={busy}
            title="Ask the provider whether the key works (a cheap request, e.g. its model list)"
            onClick={() =>
              run(async () => {
                const res = await api<{ status: string; reason?: string | null }>('POST', `/api/keys/${encodeURIComponent(k.id)}/check`, {});
                onChange({
                  ...k,
                  status: res.status,
                  status_reason: res.reason ?? null,
                  live_status: res.status,
                  cooldowns: res.status === 'healthy' ? [] : k.cooldowns,
                });
                setNotice(`Checked: ${res.status.replace('_', ' ')}${res.reason ? ` — ${res.reason}` : ''}.`);
              })
            }
          >
            Check
          </button>
          <button type="button" class="btn btn-small" aria-expanded={showStats} onClick={() => setShowStats(!showStats)}>
            {showStats ? 'Hide stats' : 'Stats'}
          </button>
          <ConfirmButton
            label="Delete"
            confirmLabel={`Delete ${k.label}`}
            busy={busy}
            onConfirm={() =>
              run(async () => {
                await api('DELETE', `/api/keys/${encodeURIComponent(k.id)}`);
                toast(`Deleted ${k.label}`);
                onDelete();
              })
            }
          />
        </div>
      </div>

      {cooldowns.some((c) => c.until_ms > now) && (
        <ul class="cooldowns" aria-label="Active cooldowns">
          {cooldowns.filter((c) => c.until_ms > now).map((c) => (
            <li key={c.model}>
              <StatusDot color="amber" label="cooling down" /> {c.model || 'all models'} cooling down ({causeWords(c.reason, c.message)}), back{' '}
              {formatUntil(c.until_ms, now)}
              {c.message ? <span class="muted"> — {c.message}</span> : null}
            </li>
          ))}
        </ul>
      )}
      {showModels && <ModelsEditor k={k} onSave={(models) => patch({ models })} />}
      {!k.masked_key && k.platform !== 'custom' ? null : (
        <div class="replace-key">
          <InlineEdit
            value=""
            type="password"
            label={`new API key for ${k.label}`}
            placeholder={k.masked_key ? 'Replace API key…' : 'Set an API key…'}
            onSave={async (v) => {
              if (!v) throw new Error('Paste the new key, or cancel');
              await patch({ key: v });
              setNotice('Key replaced; it is back in rotation.');
            }}
          />
        </div>
      )}
      <ErrorNote error={error} />
      {notice && <Notice kind="ok">{notice}</Notice>}
      {showStats && <KeyStatsPanel id={k.id} />}
    </li>
  );
}

function KeyStatsPanel({ id }: { id: string }) {
  const [range, setRange] = useState('24h');
  const stats = useAsync(
    (signal) => api<KeyStats>('GET', `/api/keys/${encodeURIComponent(id)}/stats?range=${range}`, undefined, { signal }),
    [id, range],
  );
  const now = useNow(1000, (stats.data?.cooldowns.length ?? 0) > 0);
  if (stats.error instanceof ApiError && (stats.error.unavailable || stats.error.status === 404)) return <Unavailable what="Per-key statistics" />;
  if (stats.error) return <ErrorNote error={stats.error} title="Could not load statistics" />;
  if (!stats.data) return <Loading />;
  const s = stats.data;
  return (
    <div class="stats-panel">
      <div class="stats-head">
        <h3>Last {range}</h3>
        <select class="input input-small" aria-label="Statistics range" value={range} onChange={(e) => setRange(e.currentTarget.value)}>
          <option value="24h">24 hours</option>
          <option value="7d">7 days</option>
          <option value="30d">30 days</option>
        </select>
      </div>
      {s.requests === 0 ? (
        <p class="muted">No request was sent through this key in this period.</p>
      ) : (
        <>
          <dl class="stat-grid">
            <div>
              <dt>Attempts</dt>
              <dd>{formatInt(s.requests)}</dd>
            </div>
            <div>
              <dt>Served</dt>
              <dd>{formatInt(s.served)}</dd>
            </div>
            <div>
              <dt>Failed over</dt>
              <dd>{formatInt(s.failed_attempts)}</dd>
            </div>
            <div>
              <dt>Success</dt>
              <dd>{formatPercent(s.success_rate)}</dd>
            </div>
            <div>
              <dt>Errors</dt>
              <dd>{formatInt(s.errors)}</dd>
            </div>
            <div>
              <dt>Rate-limited</dt>
              <dd>{formatInt(s.rate_limited)}</dd>
            </div>
            {(['min', 'p50', 'avg', 'p95', 'p99', 'max'] as const).map((p) => (
              <div key={p}>
                <dt>{p === 'avg' ? 'avg latency' : `${p} latency`}</dt>
                <dd>{formatDuration(s.latency_ms?.[p])}</dd>
              </div>
            ))}
          </dl>
          {s.last_error && (
            <p class="muted" data-testid="last-error">
              Last error {formatDateTime(s.last_error.at_ms)}: <span class="mono">{s.last_error.code}</span>
              {s.last_error.message ? ` — ${s.last_error.message}` : ''}
            </p>
          )}
          {s.hourly?.length > 0 && (
            <Bars label="Attempts per hour" data={s.hourly.map((h) => ({ start: h.hour_start_ms, total: h.requests, errors: h.errors }))} height={90} />
          )}
          <div class="two-col">
            {s.by_model?.length > 0 && (
              <div class="table-wrap">
                <table>
                  <caption>By model</caption>
                  <thead>
                    <tr>
                      <th scope="col">Model</th>
                      <th scope="col" class="num">
                        Requests
                      </th>
                      <th scope="col" class="num">
                        Errors
                      </th>
                      <th scope="col" class="num">
                        Avg latency
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.by_model.map((m) => (
                      <tr key={m.model}>
                        <td class="mono">{m.model}</td>
                        <td class="num">{formatInt(m.requests)}</td>
                        <td class="num">{formatInt(m.errors)}</td>
                        <td class="num">{formatDuration(m.avg_latency_ms)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            {s.by_error?.length > 0 && (
              <div class="table-wrap">
                <table>
                  <caption>Errors</caption>
                  <thead>
                    <tr>
                      <th scope="col">Code</th>
                      <th scope="col" class="num">
                        Count
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.by_error.map((e) => (
                      <tr key={e.code}>
                        <td class="mono">{e.code}</td>
                        <td class="num">{formatInt(e.count)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
        </>
      )}
      {s.cooldowns?.length > 0 && (
        <ul class="cooldowns" aria-label="Active cooldowns">
          {s.cooldowns.map((c) => (
            <li key={c.model}>
              <StatusDot color="amber" label="cooling down" /> {c.model} back {formatUntil(c.until_ms, now)} — {c.reason}
            </li>
          ))}
        </ul>
      )}
      {s.recent?.length > 0 && (
        <div class="table-wrap">
          <table>
            <caption>Last {s.recent.length} requests</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Model</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">
                  Latency
                </th>
                <th scope="col" class="num">
                  Tokens in/out
                </th>
              </tr>
            </thead>
            <tbody>
              {s.recent.map((r) => (
                <tr key={r.id}>
                  <td title={formatDateTime(r.created_at_ms)}>{formatTime(r.created_at_ms)}</td>
                  <td class="mono">{r.model}</td>
                  <td>
                    <span class={`pill pill-${r.status === 'success' ? 'ok' : 'bad'}`}>
                      {r.status} {r.http_status}
                    </span>
                    {r.error_code && <span class="muted"> {r.error_code}</span>}
                  </td>
                  <td class="num">{formatDuration(r.latency_ms)}</td>
                  <td class="num">
                    {formatInt(r.input_tokens)} / {formatInt(r.output_tokens)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function ModelsEditor({ k, onSave }: { k: ProviderKey; onSave: (models: string[]) => Promise<void> }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (editing) {
    return (
      <form
        class="models-box form-stack"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await onSave(parseModels(draft));
            setEditing(false);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <Field label={`Models served by ${k.label}`} id={`models-${k.id}`} hint="One per line or comma-separated. Requests for other models never reach this key.">
          <textarea id={`models-${k.id}`} class="input mono" rows={Math.min(12, Math.max(3, k.models.length + 1))} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </Field>
        <ErrorNote error={error} title="Could not save the models" />
        <div class="form-actions">
          <button type="submit" class="btn btn-small btn-primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save models'}
          </button>
          <button type="button" class="btn btn-small" onClick={() => setEditing(false)} disabled={busy}>
            Cancel
          </button>
        </div>
      </form>
    );
  }
  return (
    <div class="models-box">
      {k.models.length === 0 ? (
        <p class="muted">
          No models: this key is never chosen. Use <em>Discover models</em> or edit the list.
        </p>
      ) : (
        <ul class="chips">
          {k.models.map((m) => (
            <li key={m} class="chip mono">
              {m}
            </li>
          ))}
        </ul>
      )}
      <button
        type="button"
        class="btn btn-small btn-ghost"
        onClick={() => {
          setDraft(k.models.join('\n'));
          setError(null);
          setEditing(true);
        }}
      >
        Edit list
      </button>
    </div>
  );
}
