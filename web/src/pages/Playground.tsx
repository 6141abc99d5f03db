import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, errorFromResponse, errorMessage, type ModelEntry } from '../lib/api';
import { loadCatalog } from '../lib/catalog';
import { formatDuration, formatInt } from '../lib/format';
import { renderMarkdown } from '../lib/markdown';
import { interpretChatEvent, SseParser } from '../lib/sse';
import { live } from '../lib/ws';
import { linkClick } from '../lib/router';
import { Empty, PageHeader } from '../components/ui';

interface Route {
  provider?: string;
  model?: string;
  proxy?: string | null;
  attempt?: number;
}

interface Msg {
  id: number;
  role: 'user' | 'assistant';
  content: string;
  reasoning?: string;
  pending?: boolean;
  error?: string;
  stopped?: boolean;
  route?: Route;
  attempts?: number;
  failures?: string[];
  latencyMs?: number;
  outputTokens?: number;
  reqId?: string;
}

const SETTINGS_KEY = 'freellmapi.playground';

function loadSettings(): { model: string; system: string; temperature: string; maxTokens: string } {
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}');
    return { model: s.model ?? 'auto', system: s.system ?? '', temperature: s.temperature ?? '', maxTokens: s.maxTokens ?? '' };
  } catch {
    return { model: 'auto', system: '', temperature: '', maxTokens: '' };
  }
}

function newReqId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return `pg-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export function PlaygroundPage() {
  const initial = loadSettings();
  const [model, setModel] = useState(initial.model);
  const [system, setSystem] = useState(initial.system);
  const [temperature, setTemperature] = useState(initial.temperature);
  const [maxTokens, setMaxTokens] = useState(initial.maxTokens);
  const [input, setInput] = useState('');
  const [messages, setMessages] = useState<Msg[]>([]);
  const [busy, setBusy] = useState(false);
  const [models, setModels] = useState<{ list: ModelEntry[]; source: 'api' | 'keys' } | null>(null);
  const [unavailable, setUnavailable] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const seq = useRef(0);
  const transcript = useRef<HTMLDivElement>(null);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({ model, system, temperature, maxTokens }));
  }, [model, system, temperature, maxTokens]);

  useEffect(() => {
    const ctrl = new AbortController();
    loadCatalog(ctrl.signal).then(setModels, (e) => {
      if ((e as Error).name !== 'AbortError') setModels({ list: [], source: 'keys' });
    });
    return () => ctrl.abort();
  }, []);

  useEffect(() => () => abort.current?.abort(), []);

  useEffect(() => {
    const el = transcript.current;
    if (!el) return;
    // Keep following the answer only if the reader is already at the bottom.
    if (el.scrollHeight - el.scrollTop - el.clientHeight < 120) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const update = (id: number, fn: (m: Msg) => Msg) => setMessages((list) => list.map((m) => (m.id === id ? fn(m) : m)));

  const send = async (e?: Event) => {
    e?.preventDefault();
    const text = input.trim();
    if (!text || busy) return;
    const history = messages.filter((m) => !m.error && !m.pending && m.content);
    const userMsg: Msg = { id: ++seq.current, role: 'user', content: text };
    const reqId = newReqId();
    const asst: Msg = { id: ++seq.current, role: 'assistant', content: '', pending: true, reqId, failures: [] };
    setMessages((list) => [...list, userMsg, asst]);
    setInput('');
    setBusy(true);

    const body: Record<string, unknown> = {
      model: model.trim() || 'auto',
      stream: true,
      stream_options: { include_usage: true },
      messages: [
        ...(system.trim() ? [{ role: 'system', content: system.trim() }] : []),
        ...history.map((m) => ({ role: m.role, content: m.content })),
        { role: 'user', content: text },
      ],
    };
    const t = parseFloat(temperature);
    if (temperature.trim() !== '' && Number.isFinite(t)) body.temperature = t;
    const mt = parseInt(maxTokens, 10);
    if (maxTokens.trim() !== '' && Number.isFinite(mt) && mt > 0) body.max_tokens = mt;

    // Follow this request's routing on the WebSocket while we wait for the first byte.
    const off = live.onMessage((msg) => {
      if (msg.req_id !== reqId) return;
      if (msg.type === 'request.attempt') {
        update(asst.id, (m) => ({
          ...m,
          route: { provider: msg.provider as string, model: msg.model as string, proxy: (msg.proxy as string) ?? null, attempt: msg.attempt as number },
        }));
      } else if (msg.type === 'request.attempt_failed') {
        update(asst.id, (m) => ({
          ...m,
          failures: [...(m.failures ?? []), `${msg.provider}/${msg.model}: ${msg.message ?? msg.error_class}`],
        }));
      } else if (msg.type === 'request.tokens') {
        update(asst.id, (m) => ({ ...m, outputTokens: msg.output_tokens as number }));
      } else if (msg.type === 'request.finished') {
        update(asst.id, (m) => ({ ...m, attempts: (msg.attempts as number) ?? m.attempts, latencyMs: (msg.latency_ms as number) ?? m.latencyMs }));
      }
    });

    const ctrl = new AbortController();
    abort.current = ctrl;
    const started = performance.now();
    let content = '';
    let reasoning = '';
    let frame = 0;
    const flush = () => {
      frame = 0;
      update(asst.id, (m) => ({ ...m, content, reasoning }));
    };
    try {
      const res = await fetch('/api/playground/chat/completions', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', 'X-Request-ID': reqId },
        body: JSON.stringify(body),
        signal: ctrl.signal,
      });
      if (!res.ok) {
        const err = await errorFromResponse(res);
        if (err.unavailable) setUnavailable(true);
        throw err;
      }
      const hdr = (n: string) => res.headers.get(n) ?? undefined;
      const attemptsHdr = hdr('x-freellmapi-attempts');
      update(asst.id, (m) => ({
        ...m,
        reqId: hdr('x-request-id') ?? m.reqId,
        route: hdr('x-freellmapi-provider') ? { ...m.route, provider: hdr('x-freellmapi-provider'), model: hdr('x-freellmapi-model') ?? m.route?.model } : m.route,
        attempts: attemptsHdr ? parseInt(attemptsHdr, 10) : m.attempts,
      }));
      const ctype = res.headers.get('content-type') ?? '';
      if (ctype.includes('application/json')) {
        const json = (await res.json()) as { choices?: { message?: { content?: string; reasoning_content?: string } }[] };
        content = json.choices?.[0]?.message?.content ?? '';
        reasoning = json.choices?.[0]?.message?.reasoning_content ?? '';
        flush();
      } else {
        if (!res.body) throw new Error('The response has no body to stream');
        const reader = res.body.getReader();
        const parser = new SseParser();
        let done = false;
        while (!done) {
          const { value, done: end } = await reader.read();
          const events = end ? parser.finish() : parser.push(value!);
          for (const ev of events) {
            for (const item of interpretChatEvent(ev)) {
              if (item.kind === 'delta') {
                content += item.content;
                reasoning += item.reasoning;
              } else if (item.kind === 'usage') {
                if (item.completionTokens !== undefined) update(asst.id, (m) => ({ ...m, outputTokens: item.completionTokens }));
              } else if (item.kind === 'error') {
                throw new ApiError(item.message, 200, item.code, item.type);
              } else if (item.kind === 'done') {
                done = true;
              }
            }
          }
          if (end) done = true;
          if (!frame) frame = requestAnimationFrame(flush);
        }
        if (done) void reader.cancel().catch(() => undefined);
      }
      if (frame) cancelAnimationFrame(frame);
      update(asst.id, (m) => ({ ...m, content, reasoning, pending: false, latencyMs: m.latencyMs ?? performance.now() - started }));
    } catch (err) {
      if (frame) cancelAnimationFrame(frame);
      const aborted = (err as Error).name === 'AbortError';
      update(asst.id, (m) => ({
        ...m,
        content,
        reasoning,
        pending: false,
        stopped: aborted,
        error: aborted ? undefined : errorMessage(err),
        latencyMs: performance.now() - started,
      }));
    } finally {
      off();
      abort.current = null;
      setBusy(false);
      inputRef.current?.focus();
    }
  };

  const stop = () => abort.current?.abort();

  const grouped = useMemo(() => {
    const list = models?.list ?? [];
    return {
      auto: list.filter((m) => m.kind === 'auto'),
      profiles: list.filter((m) => m.kind === 'profile'),
      groups: list.filter((m) => m.kind === 'group' && !m.embedding),
      models: list.filter((m) => m.kind === 'model' && !m.embedding),
    };
  }, [models]);

  return (
    <div class="page playground">
      <PageHeader title="Playground">
        <button type="button" class="btn btn-small" onClick={() => setMessages([])} disabled={busy || messages.length === 0}>
          Clear chat
        </button>
      </PageHeader>
      {unavailable && (
        <div class="note note-warn" role="status">
          The playground endpoint (<code>POST /api/playground/chat/completions</code>) is not available in this server version.
          Use a gateway key against <code>/v1/chat/completions</code> instead.
        </div>
      )}
      <div class="pg-layout">
        <aside class="pg-settings card" aria-label="Request settings">
          <div class="field" data-models={models ? models.source : 'loading'}>
            <label for="pg-model">Model</label>
            {!models ? (
              <select id="pg-model" class="input" disabled>
                <option>Loading models…</option>
              </select>
            ) : models.source === 'api' && models.list.length > 0 ? (
              <select id="pg-model" class="input" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
                {!models.list.some((m) => m.id === model) && <option value={model}>{model}</option>}
                {grouped.auto.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id} (best available)
                  </option>
                ))}
                {grouped.profiles.length > 0 && (
                  <optgroup label="Profiles">
                    {grouped.profiles.map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.id}
                      </option>
                    ))}
                  </optgroup>
                )}
                {grouped.groups.length > 0 && (
                  <optgroup label="Model groups (same model, several platforms)">
                    {grouped.groups.map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.id} — {m.providers.join(', ')}
                      </option>
                    ))}
                  </optgroup>
                )}
                <optgroup label="Models">
                  {grouped.models.map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.id}
                      {m.providers.length ? ` — ${m.providers.join(', ')}` : ''}
                    </option>
                  ))}
                </optgroup>
              </select>
            ) : (
              <>
                <input
                  id="pg-model"
                  class="input mono"
                  list="pg-models"
                  value={model}
                  onInput={(e) => setModel(e.currentTarget.value)}
                  aria-describedby="pg-model-hint"
                />
                <datalist id="pg-models">
                  <option value="auto" />
                  {(models?.list ?? []).map((m) => (
                    <option key={m.id} value={m.id} />
                  ))}
                </datalist>
                <div class="hint" id="pg-model-hint">
                  <code>auto</code> picks the best available key; or type a model id your keys serve.
                </div>
              </>
            )}
          </div>
          <div class="field">
            <label for="pg-system">System prompt</label>
            <textarea id="pg-system" class="input" rows={4} value={system} placeholder="You are a helpful assistant." onInput={(e) => setSystem(e.currentTarget.value)} />
          </div>
          <div class="field-row">
            <div class="field">
              <label for="pg-temp">Temperature</label>
              <input id="pg-temp" class="input" type="number" min={0} max={2} step={0.1} placeholder="default" value={temperature} onInput={(e) => setTemperature(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="pg-max">Max tokens</label>
              <input id="pg-max" class="input" type="number" min={1} step={1} placeholder="default" value={maxTokens} onInput={(e) => setMaxTokens(e.currentTarget.value)} />
            </div>
          </div>
        </aside>

        <section class="pg-chat card" aria-label="Conversation">
          <div
            class="transcript"
            ref={transcript}
            data-testid="transcript"
            aria-live="polite"
            aria-busy={busy}
            onClick={(e) => {
              const btn = (e.target as HTMLElement).closest('.copy-code');
              const code = btn?.parentElement?.querySelector('code')?.textContent;
              if (btn && code !== undefined && code !== null) {
                void copyText(code).then(() => {
                  btn.textContent = 'Copied ✓';
                  window.setTimeout(() => (btn.textContent = 'Copy'), 1500);
                });
              }
            }}
          >
            {messages.length === 0 && (
              <Empty title="Ask something to test your routing">
                The answer streams back through the same router as <code>/v1/chat/completions</code>; the line above each
                answer shows which provider and model handled it. No keys yet?{' '}
                <a href="/keys" onClick={linkClick}>
                  Add a provider key
                </a>{' '}
                first.
              </Empty>
            )}
            {messages.map((m) => (
              <MessageView key={m.id} m={m} />
            ))}
          </div>
          <form class="composer" onSubmit={send}>
            <label for="pg-input" class="sr-only">
              Message
            </label>
            <textarea
              id="pg-input"
              ref={inputRef}
              class="input"
              rows={2}
              placeholder="Message (Enter to send, Shift+Enter for a new line)"
              value={input}
              onInput={(e) => setInput(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                  e.preventDefault();
                  void send();
                }
              }}
            />
            {busy ? (
              <button type="button" class="btn btn-danger" onClick={stop}>
                Stop
              </button>
            ) : (
              <button type="submit" class="btn btn-primary" disabled={!input.trim()}>
                Send
              </button>
            )}
          </form>
        </section>
      </div>
    </div>
  );
}

/** Adds a copy button to every code block of rendered (already escaped) Markdown. */
function withCopyButtons(html: string): string {
  return html.replace(/<pre>/g, '<pre><button type="button" class="copy-code">Copy</button>');
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.appendChild(ta);
  ta.select();
  document.execCommand('copy');
  ta.remove();
}

function MessageView({ m }: { m: Msg }) {
  if (m.role === 'user') {
    return (
      <div class="msg msg-user">
        <div class="msg-body">{m.content}</div>
      </div>
    );
  }
  const r = m.route;
  return (
    <div class={`msg msg-assistant ${m.error ? 'msg-error' : ''}`} data-testid="assistant-msg">
      <div class="route-line" data-testid="route-line">
        {m.pending && <span class="spinner" aria-hidden="true" />}
        {r?.provider ? (
          <span>
            {m.pending ? (m.content ? 'Streaming from ' : 'Trying ') : 'Answered by '}
            <strong>{r.provider}</strong> · <span class="mono">{r.model}</span>
            {r.proxy ? ` via ${r.proxy}` : ''}
          </span>
        ) : (
          <span>{m.pending ? 'Routing…' : m.error ? 'No provider answered' : ''}</span>
        )}
        {(m.attempts ?? r?.attempt ?? 0) > 1 && <span class="tag tag-warn">{m.attempts ?? r?.attempt} attempts</span>}{' '}
        {!m.pending && m.latencyMs !== undefined && <span class="muted">{formatDuration(m.latencyMs)}</span>}{' '}
        {m.outputTokens !== undefined && <span class="muted">{formatInt(m.outputTokens)} tokens</span>}{' '}
        {m.stopped && <span class="tag tag-muted">stopped</span>}
      </div>
      {m.failures && m.failures.length > 0 && (
        <ul class="failures">
          {m.failures.map((f, i) => (
            <li key={i}>✗ {f}</li>
          ))}
        </ul>
      )}
      {m.reasoning && (
        <details class="reasoning">
          <summary>Reasoning</summary>
          <div class="md" dangerouslySetInnerHTML={{ __html: renderMarkdown(m.reasoning) }} />
        </details>
      )}
      {m.content && <div class="md msg-body" dangerouslySetInnerHTML={{ __html: withCopyButtons(renderMarkdown(m.content)) }} />}
      {m.pending && !m.content && <div class="typing" aria-label="waiting for the answer" />}
      {m.error && (
        <div class="note note-error" role="alert">
          {m.error}
        </div>
      )}
    </div>
  );
}
