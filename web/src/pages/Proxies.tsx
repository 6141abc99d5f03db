import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiError, listOf, type ImportResult, type Platform, type ProxyList, type ProxySettings, type ProxyView } from '../lib/api';
import { formatBytes, formatDuration, formatInt, formatPercent, formatRelative } from '../lib/format';
import {
  buildProxyUrl,
  describeProbe,
  HEALTH_TEXT,
  maskProxyUrl,
  POOL_STRATEGIES,
  previewImport,
  proxyErrorWords,
  PROXY_SCHEMES,
  proxyHealth,
  type HealthWord,
  type ProbeResult,
  type ProxyScheme,
} from '../lib/proxies';
import {
  ConfirmButton,
  Empty,
  ErrorNote,
  Field,
  InlineEdit,
  LoadState,
  PageHeader,
  Section,
  StatusDot,
  Switch,
  toast,
  Unavailable,
  useAsync,
  type DotColor,
} from '../components/ui';

const DOT: Record<HealthWord, DotColor> = { healthy: 'green', failing: 'amber', unhealthy: 'red', untested: 'grey', disabled: 'grey' };

/** A test result per proxy id, kept while the page is open. */
type Results = Record<string, ProbeResult & { at: number }>;

export function ProxiesPage({ isAdmin }: { isAdmin: boolean }) {
  const list = useAsync((signal) => api<ProxyList>('GET', '/api/proxies', undefined, { signal }), []);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [results, setResults] = useState<Results>({});
  const [bulkBusy, setBulkBusy] = useState(false);
  const [bulkNote, setBulkNote] = useState<{ text: string; kind: 'ok' | 'error' } | null>(null);

  // Live statistics: refresh every 15 s while the tab is visible.
  useEffect(() => {
    const t = window.setInterval(() => {
      if (!document.hidden) void list.reload();
    }, 15_000);
    return () => window.clearInterval(t);
  }, []);

  const proxies = list.data ? listOf<ProxyView>(list.data) : [];
  const ids = proxies.map((p) => p.id);
  // Forget selections of proxies that are gone.
  const chosen = ids.filter((id) => selected.has(id));

  if (list.error instanceof ApiError && list.error.unavailable) {
    return (
      <div class="page">
        <PageHeader title="Proxies" />
        <Unavailable what="The outbound proxy pool" />
      </div>
    );
  }

  const replace = (p: ProxyView) => list.setData((d) => d && { ...d, data: d.data.map((x) => (x.id === p.id ? { ...x, ...p } : x)) });

  const recordResults = (rs: ProbeResult[]) => {
    const at = Date.now();
    setResults((prev) => {
      const next = { ...prev };
      for (const r of rs) if (r.id) next[r.id] = { ...r, at };
      return next;
    });
  };

  const bulk = async (action: 'enable' | 'disable' | 'test' | 'delete') => {
    if (chosen.length === 0) return;
    setBulkBusy(true);
    setBulkNote(null);
    try {
      const r = await api<{ action: string; affected: number; results?: ProbeResult[] }>('POST', '/api/proxies/bulk', { action, ids: chosen });
      if (action === 'test') {
        const rs = r.results ?? [];
        recordResults(rs);
        const ok = rs.filter((x) => x.ok).length;
        setBulkNote({ text: `Tested ${rs.length}: ${ok} working, ${rs.length - ok} failing.`, kind: 'ok' });
      } else {
        const verb = action === 'enable' ? 'Enabled' : action === 'disable' ? 'Disabled' : 'Deleted';
        setBulkNote({ text: `${verb} ${r.affected} prox${r.affected === 1 ? 'y' : 'ies'}.`, kind: 'ok' });
        if (action === 'delete') setSelected(new Set());
      }
      await list.reload();
    } catch (e) {
      setBulkNote({ text: (e as Error).message, kind: 'error' });
    } finally {
      setBulkBusy(false);
    }
  };

  const allChecked = ids.length > 0 && chosen.length === ids.length;

  return (
    <div class="page">
      <PageHeader title="Proxies">
        <button type="button" class="btn btn-small" onClick={() => void list.reload()} disabled={list.loading}>
          {list.loading && list.data ? 'Refreshing…' : 'Refresh'}
        </button>
      </PageHeader>
      <p class="lede">
        Send provider calls through HTTP or SOCKS proxies so one egress address is not throttled for all of your keys. Each
        key keeps a proxy for an hour; failing proxies leave the rotation until they recover.
      </p>
      <div class="note note-warn proxy-warning" role="note" data-testid="proxy-warning">
        <strong>Only use proxies you trust.</strong> A free public proxy is run by someone you do not know. It always sees{' '}
        <strong>which provider you call</strong>, when, and how much you send, and it can slow down or cut your traffic. It can{' '}
        <strong>read and change anything unencrypted</strong>, including an API key sent over plain HTTP — which is why keys with
        an <code>http://</code> base URL never go through a proxy. HTTPS traffic (every built-in provider) stays encrypted end to
        end.
      </div>

      <PoolSettings isAdmin={isAdmin} />

      <div class="two-col">
        <AddProxy onAdded={(p) => list.setData((d) => (d ? { ...d, data: [...d.data, p] } : d))} />
        <ImportProxies onDone={() => void list.reload()} />
      </div>

      <Section title={`Your proxies${list.data ? ` (${proxies.length})` : ''}`} id="proxy-list-title">
        <LoadState a={list} what="Proxies" />
        {list.data?.single && (
          <p class="small" data-testid="single-proxy">
            <span class="tag">PROXY_URL</span> <span class="mono">{maskProxyUrl(list.data.single.url)}</span> carries every proxied
            call, over the pool ({HEALTH_TEXT[proxyHealth(list.data.single)]}).
          </p>
        )}
        {list.data && proxies.length === 0 && (
          <Empty title="No proxies yet">Add one above, or import a list (one URL per line).</Empty>
        )}
        {proxies.length > 0 && (
          <>
            <div class="bulk-bar" role="group" aria-label="Bulk actions on the selected proxies">
              <label class="check">
                <input
                  type="checkbox"
                  checked={allChecked}
                  ref={(el) => {
                    if (el) el.indeterminate = chosen.length > 0 && !allChecked;
                  }}
                  onChange={() => setSelected(allChecked ? new Set() : new Set(ids))}
                />
                <span>Select all</span>
              </label>
              <span class="muted small" aria-live="polite">
                {chosen.length} selected
              </span>
              <button type="button" class="btn btn-small" disabled={bulkBusy || !chosen.length} onClick={() => void bulk('enable')}>
                Enable
              </button>
              <button type="button" class="btn btn-small" disabled={bulkBusy || !chosen.length} onClick={() => void bulk('disable')}>
                Disable
              </button>
              <button type="button" class="btn btn-small" disabled={bulkBusy || !chosen.length} onClick={() => void bulk('test')}>
                {bulkBusy ? 'Working…' : 'Test'}
              </button>
              {chosen.length > 0 && (
                <ConfirmButton label="Delete" confirmLabel={`Delete ${chosen.length} selected`} busy={bulkBusy} onConfirm={() => bulk('delete')} />
              )}
            </div>
            {bulkNote && (
              <p class={`note note-${bulkNote.kind === 'ok' ? 'ok' : 'error'}`} role={bulkNote.kind === 'error' ? 'alert' : 'status'} data-testid="bulk-note">
                {bulkNote.text}
              </p>
            )}
            <div class="table-wrap">
              <table class="responsive-table proxy-table" data-testid="proxy-table">
                <thead>
                  <tr>
                    <th scope="col">
                      <span class="sr-only">Selected</span>
                    </th>
                    <th scope="col">Proxy</th>
                    <th scope="col">Country</th>
                    <th scope="col">Enabled</th>
                    <th scope="col" class="num">
                      Requests
                    </th>
                    <th scope="col" class="num">
                      Success
                    </th>
                    <th scope="col" class="num">
                      Avg latency
                    </th>
                    <th scope="col" class="num">
                      In / out
                    </th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {proxies.map((p) => (
                    <ProxyRow
                      key={p.id}
                      p={p}
                      checked={selected.has(p.id)}
                      onCheck={(v) =>
                        setSelected((s) => {
                          const n = new Set(s);
                          if (v) n.add(p.id);
                          else n.delete(p.id);
                          return n;
                        })
                      }
                      result={results[p.id]}
                      onResult={(r) => {
                        recordResults([{ ...r, id: p.id }]);
                        void list.reload();
                      }}
                      onChange={replace}
                      onDeleted={() => list.setData((d) => d && { ...d, data: d.data.filter((x) => x.id !== p.id) })}
                    />
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </Section>
    </div>
  );
}

function ProxyRow({
  p,
  checked,
  onCheck,
  result,
  onResult,
  onChange,
  onDeleted,
}: {
  p: ProxyView;
  checked: boolean;
  onCheck: (v: boolean) => void;
  result?: ProbeResult & { at: number };
  onResult: (r: ProbeResult) => void;
  onChange: (p: ProxyView) => void;
  onDeleted: () => void;
}) {
  const [testing, setTesting] = useState(false);
  const health = proxyHealth(p);
  const s = p.stats;
  const patch = async (body: Record<string, unknown>) => onChange(await api<ProxyView>('PATCH', `/api/proxies/${encodeURIComponent(p.id)}`, body));
  const test = async () => {
    setTesting(true);
    try {
      onResult(await api<ProbeResult>('POST', `/api/proxies/${encodeURIComponent(p.id)}/test`, {}));
    } catch (e) {
      onResult({ ok: false, error: (e as Error).message });
    } finally {
      setTesting(false);
    }
  };
  return (
    <tr class={p.enabled ? '' : 'row-disabled'} data-testid="proxy-row" data-proxy-id={p.id}>
      <td data-label="Select">
        <input type="checkbox" checked={checked} aria-label={`Select ${p.label}`} onChange={(e) => onCheck(e.currentTarget.checked)} />
      </td>
      <td data-label="Proxy">
        <div class="proxy-cell">
          <div class="proxy-title">
            <StatusDot color={DOT[health]} label={HEALTH_TEXT[health]} />
            <InlineEdit value={p.label} label="label" onSave={(v) => patch({ label: v })} />
          </div>
          <div class="mono small muted proxy-url">
            {maskProxyUrl(p.url)}
            {p.credentials && <span title="Credentials are stored encrypted and never shown"> · {p.credentials}</span>}
          </div>
          <div class={`small status-text status-${DOT[health]}`} data-testid="proxy-health">
            {HEALTH_TEXT[health]}
            {p.health?.latency_ms ? ` · ${formatInt(p.health.latency_ms)} ms` : ''}
            {p.health?.last_check_at ? ` · checked ${formatRelative(p.health.last_check_at)}` : ''}
          </div>
          {result && (
            <div class={`small test-result ${result.ok ? 'status-green' : 'status-red'}`} role="status" data-testid="proxy-test-result" title={result.error ?? undefined}>
              Test {formatRelative(result.at)}: {describeProbe(result)}
            </div>
          )}
          {s?.last_error && (!result || result.ok) && (
            <div class="small muted proxy-error" title={s.last_error}>
              Last error{s.last_error_at ? ` ${formatRelative(s.last_error_at)}` : ''}: {proxyErrorWords(s.last_error)}
            </div>
          )}
        </div>
      </td>
      <td data-label="Country">
        <InlineEdit value={p.country ?? ''} label="country code" placeholder="—" onSave={(v) => patch({ country: v })} />
      </td>
      <td data-label="Enabled">
        <Switch
          checked={p.enabled}
          label={`${p.enabled ? 'Disable' : 'Enable'} ${p.label}`}
          onChange={async (v) => {
            try {
              await patch({ enabled: v });
            } catch (e) {
              toast((e as Error).message, 'error');
            }
          }}
        />
      </td>
      <td data-label="Requests" class="num">
        {formatInt(s?.requests ?? 0)}
      </td>
      <td data-label="Success" class="num">
        {formatPercent(s?.success_rate ?? null)}
      </td>
      <td data-label="Avg latency" class="num">
        {s?.avg_latency_ms != null ? formatDuration(s.avg_latency_ms) : '—'}
      </td>
      <td data-label="In / out" class="num">
        {formatBytes(s?.bytes_in ?? 0)} / {formatBytes(s?.bytes_out ?? 0)}
      </td>
      <td class="actions-cell">
        <div class="row-buttons">
          <button type="button" class="btn btn-small" onClick={() => void test()} disabled={testing} aria-label={`Test ${p.label}`}>
            {testing ? 'Testing…' : 'Test'}
          </button>
          <ConfirmButton
            label="Delete"
            confirmLabel={`Delete ${p.label}`}
            onConfirm={async () => {
              try {
                await api('DELETE', `/api/proxies/${encodeURIComponent(p.id)}`);
                onDeleted();
                toast(`Deleted ${p.label}`);
              } catch (e) {
                toast((e as Error).message, 'error');
              }
            }}
          />
        </div>
      </td>
    </tr>
  );
}

function AddProxy({ onAdded }: { onAdded: (p: ProxyView) => void }) {
  const [scheme, setScheme] = useState<ProxyScheme>('http');
  const [address, setAddress] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [label, setLabel] = useState('');
  const [country, setCountry] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const built = buildProxyUrl({ scheme, address, username, password });
    if ('error' in built) {
      setError(new Error(built.error));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { url: built.url };
      if (label.trim()) body.label = label.trim();
      if (country.trim()) body.country = country.trim().toUpperCase();
      const p = await api<ProxyView>('POST', '/api/proxies', body);
      onAdded(p);
      toast(`Added ${p.label}`);
      setAddress('');
      setUsername('');
      setPassword('');
      setLabel('');
      setCountry('');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title="Add a proxy" id="proxy-add-title">
      <form class="form-stack" onSubmit={submit} aria-labelledby="proxy-add-title">
        <div class="proxy-address">
          <Field label="Type" id="px-scheme">
            <select id="px-scheme" class="input" value={scheme} onChange={(e) => setScheme(e.currentTarget.value as ProxyScheme)}>
              {PROXY_SCHEMES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Address" id="px-address" hint="host:port, or a whole URL such as socks5h://host:1080">
            <input
              id="px-address"
              class="input mono"
              required
              autocomplete="off"
              spellcheck={false}
              placeholder="127.0.0.1:8080"
              value={address}
              aria-describedby="px-address-hint"
              onInput={(e) => setAddress(e.currentTarget.value)}
            />
          </Field>
        </div>
        <div class="field-row">
          <Field label="Username (optional)" id="px-user">
            <input id="px-user" class="input" autocomplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
          </Field>
          <Field label="Password (optional)" id="px-pass">
            <input id="px-pass" class="input" type="password" autocomplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
        </div>
        <div class="field-row">
          <Field label="Label (optional)" id="px-label">
            <input id="px-label" class="input" maxLength={64} value={label} onInput={(e) => setLabel(e.currentTarget.value)} />
          </Field>
          <Field label="Country (optional)" id="px-country" hint="Two letters, e.g. FR">
            <input
              id="px-country"
              class="input mono"
              maxLength={2}
              pattern="[A-Za-z]{2}"
              value={country}
              aria-describedby="px-country-hint"
              onInput={(e) => setCountry(e.currentTarget.value)}
            />
          </Field>
        </div>
        <p class="hint">Credentials are stored encrypted and never shown again.</p>
        <ErrorNote error={error} title="Could not add the proxy" />
        <div class="form-actions">
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {busy ? 'Adding…' : 'Add proxy'}
          </button>
        </div>
      </form>
    </Section>
  );
}

function ImportProxies({ onDone }: { onDone: () => void }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<ImportResult | null>(null);
  const preview = useMemo(() => previewImport(text), [text]);

  const readFile = async (file: File | undefined) => {
    if (!file) return;
    if (file.size > 2_000_000) {
      setError(new Error('That file is over 2 MB: split the list.'));
      return;
    }
    setError(null);
    setText(await file.text());
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const r = await api<ImportResult>('POST', '/api/proxies/import', undefined, { text });
      setResult(r);
      if (r.added > 0) setText('');
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title="Import a list" id="proxy-import-title">
      <form class="form-stack" onSubmit={submit} aria-labelledby="proxy-import-title">
        <Field label="Proxy list" id="px-import" hint="One URL per line, optionally followed by a country code (the format of `freellmapi proxies find`). Blank lines and # comments are skipped; addresses you already have are skipped too.">
          <textarea
            id="px-import"
            class="input mono"
            rows={5}
            spellcheck={false}
            placeholder={'socks5://203.0.113.7:1080 FR\nhttp://198.51.100.2:3128'}
            value={text}
            aria-describedby="px-import-hint"
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </Field>
        <Field label="Or read a file" id="px-file">
          <input id="px-file" class="input" type="file" accept=".txt,.csv,.list,text/plain" onChange={(e) => void readFile(e.currentTarget.files?.[0])} />
        </Field>
        {text.trim() && (
          <p class="small" role="status">
            {preview.entries} prox{preview.entries === 1 ? 'y' : 'ies'} to import
            {preview.problems.length > 0 && (
              <span class="status-amber">
                {' '}
                · {preview.problems.length} line{preview.problems.length === 1 ? '' : 's'} will be refused (line {preview.problems[0].line}: {preview.problems[0].error})
              </span>
            )}
          </p>
        )}
        <ErrorNote error={error} title="Could not import" />
        {result && (
          <div class={`note ${result.errors.length ? 'note-warn' : 'note-ok'}`} role="status" data-testid="import-result">
            Added {result.added}, skipped {result.skipped} already known
            {result.errors.length > 0 && (
              <>
                ; {result.errors.length} line{result.errors.length === 1 ? '' : 's'} refused:
                <ul class="small">
                  {result.errors.slice(0, 5).map((er) => (
                    <li key={er.line}>
                      line {er.line}: {er.error}
                    </li>
                  ))}
                </ul>
              </>
            )}
            .
          </div>
        )}
        <div class="form-actions">
          <button type="submit" class="btn btn-primary" disabled={busy || preview.entries === 0}>
            {busy ? 'Importing…' : 'Import'}
          </button>
        </div>
      </form>
    </Section>
  );
}

function PoolSettings({ isAdmin }: { isAdmin: boolean }) {
  const loaded = useAsync((signal) => api<ProxySettings>('GET', '/api/proxies/settings', undefined, { signal }), []);
  const initial = loaded.data;
  const platforms = useAsync((signal) => api<unknown>('GET', '/api/platforms', undefined, { signal }).then((b) => listOf<Platform>(b)), []);
  const [strategy, setStrategy] = useState('none');
  const [bypass, setBypass] = useState<string[]>([]);
  const [fallback, setFallback] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [loadedFrom, setLoadedFrom] = useState<ProxySettings | undefined>(undefined);

  // Take the server's values when they first arrive (later list refreshes do not overwrite edits in progress).
  useEffect(() => {
    if (!initial || loadedFrom) return;
    setLoadedFrom(initial);
    setStrategy(initial.strategy);
    setBypass(initial.bypass ?? []);
    setFallback(initial.direct_fallback);
  }, [initial, loadedFrom]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSaved(false);
    try {
      const s = await api<ProxySettings>('PUT', '/api/proxies/settings', { strategy, bypass, direct_fallback: fallback });
      setLoadedFrom(s);
      setStrategy(s.strategy);
      setBypass(s.bypass ?? []);
      setFallback(s.direct_fallback);
      loaded.setData(() => s);
      setSaved(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const platformList = (platforms.data ?? []).filter((p) => p.id !== 'custom');
  const unknownBypass = bypass.filter((b) => !platformList.some((p) => p.id === b));

  return (
    <Section title="Pool settings" id="proxy-settings-title">
      <LoadState a={loaded} what="Pool settings" />
      {initial && (
        <form class="form-stack" onSubmit={submit} aria-labelledby="proxy-settings-title" data-testid="pool-settings">
          {!isAdmin && <p class="hint">These settings apply to the whole gateway: only an admin can change them.</p>}
          <fieldset class="field">
            <legend>Strategy</legend>
            <div class="strategy-grid">
              {POOL_STRATEGIES.map((s) => (
                <label key={s.id} class="radio">
                  <input type="radio" name="px-strategy" value={s.id} checked={strategy === s.id} onChange={() => setStrategy(s.id)} />
                  <span>
                    <strong>{s.label}</strong> <span class="muted small">{s.hint}</span>
                  </span>
                </label>
              ))}
            </div>
          </fieldset>
          <fieldset class="field">
            <legend>Always direct for these platforms (bypass)</legend>
            {platformList.length === 0 ? (
              <p class="muted small">{platforms.loading ? 'Loading platforms…' : 'No platforms listed.'}</p>
            ) : (
              <div class="check-grid">
                {[...platformList, ...unknownBypass.map((id) => ({ id, name: id }))].map((p) => (
                  <label key={p.id} class="check">
                    <input
                      type="checkbox"
                      checked={bypass.includes(p.id)}
                      onChange={(e) => setBypass(e.currentTarget.checked ? [...bypass, p.id] : bypass.filter((x) => x !== p.id))}
                    />
                    <span>{p.name}</span>
                  </label>
                ))}
              </div>
            )}
          </fieldset>
          <label class="check">
            <input type="checkbox" checked={fallback} onChange={(e) => setFallback(e.currentTarget.checked)} />
            <span>
              <strong>Direct fallback</strong>{' '}
              <span class="muted small">
                When every proxy tried for an attempt fails, send it direct instead of failing. This shows your own address to the
                provider.
              </span>
            </span>
          </label>
          <p class="hint">
            {initial.single_proxy ? (
              <>
                <code>PROXY_URL</code> is set (<span class="mono">{maskProxyUrl(initial.single_proxy)}</span>): it carries every
                proxied call, over the pool.{' '}
              </>
            ) : null}
            {initial.rotation_seconds ? `A key keeps its proxy for ${formatDuration(initial.rotation_seconds * 1000)}. ` : ''}
            {initial.health_interval_seconds
              ? `Health checks every ${formatDuration(initial.health_interval_seconds * 1000)}.`
              : initial.health_interval_seconds === 0
                ? 'The health checker is off.'
                : ''}{' '}
            A value set by a flag, variable or the config file wins at start-up.
          </p>
          <ErrorNote error={error} title="Could not save the settings" />
          {saved && (
            <p class="note note-ok" role="status">
              Settings saved.
            </p>
          )}
          <div class="form-actions">
            <button type="submit" class="btn btn-primary" disabled={busy}>
              {busy ? 'Saving…' : 'Save settings'}
            </button>
          </div>
        </form>
      )}
    </Section>
  );
}
