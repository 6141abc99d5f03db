import { useState } from 'preact/hooks';
import { api, listOf, type GatewayKey } from '../lib/api';
import { loadCatalog, type Catalog } from '../lib/catalog';
import { formatCompact, formatDateTime, formatInt, formatRelative, toMs } from '../lib/format';
import { allowListSummary, parseLimitInput } from '../lib/gatewaykeys';
import { AllowListEditor } from '../components/AllowList';
import { ConfirmButton, CopyButton, Empty, ErrorNote, Field, Gauge, InlineEdit, LoadState, PageHeader, Section, Switch, toast, useAsync, type Async } from '../components/ui';

export function GatewayKeysPage() {
  const keys = useAsync((signal) => api<unknown>('GET', '/api/gateway-keys', undefined, { signal }).then((b) => listOf<GatewayKey>(b)), []);
  // The allow-list editor picks from the same model list as the playground and the routing inspector.
  const catalog = useAsync(loadCatalog, []);
  const [label, setLabel] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [minted, setMinted] = useState<GatewayKey | null>(null);
  const origin = window.location.origin;

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const k = await api<GatewayKey>('POST', '/api/gateway-keys', label.trim() ? { label: label.trim() } : {});
      setMinted(k);
      setLabel('');
      const { key: _secret, notice: _n, ...row } = k;
      keys.setData((list) => [row as GatewayKey, ...(list ?? [])]);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const replace = (k: GatewayKey) => keys.setData((list) => (list ?? []).map((x) => (x.id === k.id ? k : x)));
  const sample = minted?.key ?? 'freellmapi-…';

  return (
    <div class="page">
      <PageHeader title="Gateway keys" />
      <p class="lede">
        Keys your applications use as their OpenAI API key. Only a hash is stored: the full key is shown once, when it is
        created.
      </p>

      <Section title="Create a gateway key" id="gk-create-title">
        <form class="inline-create" onSubmit={create} aria-labelledby="gk-create-title">
          <Field label="Name" id="gk-label" hint="What will use it, e.g. “laptop” or “CI”.">
            <input id="gk-label" class="input" value={label} placeholder="default" onInput={(e) => setLabel(e.currentTarget.value)} />
          </Field>
          <button class="btn btn-primary" type="submit" disabled={busy}>
            {busy ? 'Creating…' : 'Create key'}
          </button>
        </form>
        <ErrorNote error={error} title="Could not create the key" />
        {minted?.key && (
          <div class="secret-box" role="alert" data-testid="minted-key">
            <p class="secret-warning">
              <strong>Copy this key now.</strong> It is shown only once; if you lose it, delete it and create another.
            </p>
            <div class="secret-row">
              <code class="mono secret" data-testid="minted-key-value">
                {minted.key}
              </code>
              <CopyButton text={minted.key} label="Copy key" />
            </div>
            <button type="button" class="btn btn-small" onClick={() => setMinted(null)}>
              I have stored it — hide
            </button>
          </div>
        )}
      </Section>

      <Section title="Use it from your code" id="gk-usage-title">
        <p>
          Point any OpenAI client at <code class="mono">{origin}/v1</code>:
        </p>
        <Snippet
          title="Python (openai)"
          code={`from openai import OpenAI\n\nclient = OpenAI(base_url="${origin}/v1", api_key="${sample}")\nreply = client.chat.completions.create(\n    model="auto",\n    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(reply.choices[0].message.content)`}
        />
        <Snippet
          title="curl"
          code={`curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer ${sample}" \\\n  -H "Content-Type: application/json" \\\n  -d '{"model":"auto","messages":[{"role":"user","content":"Hello!"}]}'`}
        />
      </Section>

      <Section
        title="Your gateway keys"
        id="gk-list-title"
        actions={
          (keys.data?.length ?? 0) > 0 ? (
            <button type="button" class="btn btn-small" onClick={() => void keys.reload()} disabled={keys.loading}>
              {keys.loading ? 'Refreshing…' : 'Refresh usage'}
            </button>
          ) : null
        }
      >
        <p class="muted small">
          Limits apply per key: over its requests per minute (a sliding minute) or tokens per day (UTC) a client gets 429 with
          Retry-After; a model outside its allow-list gets 403. Leave a limit empty for none.
        </p>
        <LoadState a={keys} what="Gateway keys" />
        {keys.data && keys.data.length === 0 && (
          <Empty title="No gateway keys yet">Create one above, then use it as the API key of your OpenAI client.</Empty>
        )}
        {keys.data && keys.data.length > 0 && (
          <div class="table-wrap">
            <table class="responsive-table" data-testid="gateway-keys">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Limits</th>
                  <th scope="col">Models</th>
                  <th scope="col">Usage</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Enabled</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.data.map((k) => (
                  <GatewayKeyRow
                    key={k.id}
                    k={k}
                    catalog={catalog}
                    onChange={replace}
                    onDelete={() => keys.setData((l) => (l ?? []).filter((x) => x.id !== k.id))}
                  />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </div>
  );
}

const COLUMNS = 8;

function GatewayKeyRow({
  k,
  catalog,
  onChange,
  onDelete,
}: {
  k: GatewayKey;
  catalog: Async<Catalog>;
  onChange: (k: GatewayKey) => void;
  onDelete: () => void;
}) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [editModels, setEditModels] = useState(false);
  const patch = async (body: Record<string, unknown>) => onChange(await api<GatewayKey>('PATCH', `/api/gateway-keys/${encodeURIComponent(k.id)}`, body));
  const saveLimit = (field: 'rpm_limit' | 'tpd_limit') => async (v: string) => {
    await patch({ [field]: parseLimitInput(v) });
  };
  const created = toMs(k.created_at);
  const used = toMs(k.last_used_at);
  const allowed = k.allowed_models ?? null;
  const usage = k.usage ?? { requests_last_minute: 0, tokens_today: 0 };
  return (
    <>
      <tr class={k.enabled ? '' : 'row-disabled'} data-testid="gateway-key-row" data-id={k.id}>
        <td data-label="Name">
          <span>
            <InlineEdit value={k.label} label="name" onSave={(v) => patch({ label: v })} />
            {k.config_name && <span class="tag tag-muted">config file</span>}
            <span class="muted small gk-created" title={formatDateTime(created)}>
              created {formatRelative(created)}
            </span>
          </span>
        </td>
        <td data-label="Key">
          <code class="mono">{k.prefix.endsWith('…') ? k.prefix : `${k.prefix}…`}</code>
        </td>
        <td data-label="Limits">
          <div class="caps gk-limits">
            <span class="cap">
              <span class="cap-label" title="Requests per minute (a sliding minute)">
                RPM
              </span>
              <InlineEdit
                value={k.rpm_limit ? String(k.rpm_limit) : ''}
                type="number"
                label="requests-per-minute limit"
                placeholder="no limit"
                onSave={saveLimit('rpm_limit')}
              />
            </span>
            <span class="cap">
              <span class="cap-label" title="Prompt and completion tokens per UTC day">
                TPD
              </span>
              <InlineEdit
                value={k.tpd_limit ? String(k.tpd_limit) : ''}
                type="number"
                label="tokens-per-day limit"
                placeholder="no limit"
                onSave={saveLimit('tpd_limit')}
              />
            </span>
          </div>
        </td>
        <td data-label="Models">
          <div class="gk-models" data-testid="allow-list">
            {allowed && allowed.length > 0 ? (
              <ul class="chips" aria-label={`Models ${k.label} may use`}>
                {allowed.slice(0, 3).map((m) => (
                  <li key={m} class="chip mono">
                    {m}
                  </li>
                ))}
                {allowed.length > 3 && <li class="chip">+{allowed.length - 3} more</li>}
              </ul>
            ) : (
              <span class="tag tag-muted">all models</span>
            )}
            <button
              type="button"
              class="btn btn-small btn-ghost"
              aria-expanded={editModels}
              aria-label={`Edit the models ${k.label} may use (${allowListSummary(allowed)})`}
              onClick={() => setEditModels(!editModels)}
            >
              {editModels ? 'Close' : 'Edit'}
            </button>
          </div>
        </td>
        <td data-label="Usage">
          <div class="gk-usage" data-testid="gk-usage">
            <Gauge label="Requests this minute" used={usage.requests_last_minute} limit={k.rpm_limit} />
            <Gauge label="Tokens today" used={usage.tokens_today} limit={k.tpd_limit} />
            <span class="muted small" title="Totals since the key was created, saved every few seconds">
              {formatInt(k.request_count ?? 0)} request{k.request_count === 1 ? '' : 's'} · {formatCompact(k.token_count ?? 0)} tokens in all
            </span>
            {(k.refused_24h ?? 0) > 0 && (
              <span class="small text-warn" data-testid="gk-refused" title="Requests the gateway refused for this key (not sent to any provider)">
                {formatInt(k.refused_24h ?? 0)} refused in 24 h
                {k.last_refusal ? ` · last: ${k.last_refusal.code ?? 'refused'}, ${formatRelative(k.last_refusal.at)}` : ''}
              </span>
            )}
          </div>
        </td>
        <td data-label="Last used" title={used ? formatDateTime(used) : 'never used'}>
          {used ? formatRelative(used) : 'never'}
        </td>
        <td data-label="Enabled">
          <Switch
            checked={k.enabled}
            disabled={busy}
            label={k.enabled ? `Disable ${k.label}` : `Enable ${k.label}`}
            onChange={async (v) => {
              setBusy(true);
              setError(null);
              try {
                await patch({ enabled: v });
              } catch (e) {
                setError(e);
              } finally {
                setBusy(false);
              }
            }}
          />
        </td>
        <td class="actions-cell">
          <ConfirmButton
            label="Delete"
            confirmLabel={`Delete ${k.label}`}
            onConfirm={async () => {
              try {
                await api('DELETE', `/api/gateway-keys/${encodeURIComponent(k.id)}`);
                toast(`Deleted gateway key ${k.label}`);
                onDelete();
              } catch (e) {
                setError(e);
              }
            }}
          />
        </td>
      </tr>
      {editModels ? (
        <tr class="gk-editor-row">
          <td colSpan={COLUMNS}>
            <AllowListEditor
              label={k.label}
              current={allowed}
              catalog={catalog}
              onCancel={() => setEditModels(false)}
              onSave={async (list) => {
                await patch({ allowed_models: list });
                setEditModels(false);
                toast(list ? `${k.label} may use ${allowListSummary(list)}` : `${k.label} may use every model`);
              }}
            />
          </td>
        </tr>
      ) : null}
      {error ? (
        <tr>
          <td colSpan={COLUMNS}>
            <ErrorNote error={error} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function Snippet({ title, code }: { title: string; code: string }) {
  return (
    <div class="snippet">
      <div class="snippet-head">
        <span>{title}</span>
        <CopyButton text={code} />
      </div>
      <pre>
        <code>{code}</code>
      </pre>
    </div>
  );
}
