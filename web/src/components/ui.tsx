import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorMessage } from '../lib/api';
import { formatDateTime, formatInt, formatTime } from '../lib/format';

// ---------- data loading ----------

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
  setData: (fn: (d: T | undefined) => T | undefined) => void;
}

/** Runs `fn` on mount and whenever `deps` change; keeps the previous data while reloading. */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const ctrl = useRef<AbortController | null>(null);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(async () => {
    ctrl.current?.abort();
    const c = new AbortController();
    ctrl.current = c;
    setLoading(true);
    try {
      const d = await fnRef.current(c.signal);
      if (!c.signal.aborted) {
        setDataState(() => d);
        setError(undefined);
      }
    } catch (e) {
      if (!c.signal.aborted && (e as Error).name !== 'AbortError') setError(e);
    } finally {
      if (!c.signal.aborted) setLoading(false);
    }
  }, []);
  useEffect(() => {
    void reload();
    return () => ctrl.current?.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  const setData = useCallback((f: (d: T | undefined) => T | undefined) => setDataState((d) => f(d)), []);
  return { data, error, loading, reload, setData };
}

/** Re-renders every `ms` while `active`, for elapsed timers and cooldown countdowns. */
export function useNow(ms: number, active = true): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    const t = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms, active]);
  return now;
}

// ---------- feedback ----------

export function ErrorNote({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div class="note note-error" role="alert">
      {title && <strong>{title}: </strong>}
      {errorMessage(error)}
    </div>
  );
}

export function Notice({ children, kind = 'info' }: { children: ComponentChildren; kind?: 'info' | 'warn' | 'ok' }) {
  return (
    <div class={`note note-${kind}`} role="status">
      {children}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

export function Unavailable({ what }: { what: string }) {
  return (
    <div class="empty unavailable">
      <p class="empty-title">{what} is not available in this server version</p>
      <div class="empty-body">
        The gateway answered that this API route does not exist yet. Update the FreeLLMAPI binary to use this page; the
        rest of the dashboard keeps working.
      </div>
    </div>
  );
}

/** Error, "not available" or loading states of an Async; returns null once data is there. */
export function LoadState<T>({ a, what }: { a: Async<T>; what: string }) {
  if (a.error instanceof ApiError && a.error.unavailable) return <Unavailable what={what} />;
  if (a.error && a.data === undefined) {
    return (
      <div class="note note-error" role="alert">
        Could not load {what.toLowerCase()}: {errorMessage(a.error)}{' '}
        <button type="button" class="btn btn-small" onClick={() => void a.reload()}>
          Retry
        </button>
      </div>
    );
  }
  if (a.loading && a.data === undefined) return <Loading />;
  return null;
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

// ---------- toasts ----------

interface Toast {
  id: number;
  text: string;
  kind: 'ok' | 'error' | 'info';
}
let toasts: Toast[] = [];
let toastSeq = 0;
const toastListeners = new Set<() => void>();

export function toast(text: string, kind: Toast['kind'] = 'ok'): void {
  const id = ++toastSeq;
  toasts = [...toasts, { id, text, kind }].slice(-2);
  toastListeners.forEach((f) => f());
  window.setTimeout(() => {
    toasts = toasts.filter((t) => t.id !== id);
    toastListeners.forEach((f) => f());
  }, kind === 'error' ? 8000 : 3500);
}

function dismissToast(id: number): void {
  toasts = toasts.filter((t) => t.id !== id);
  toastListeners.forEach((f) => f());
}

export function Toasts() {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    toastListeners.add(f);
    return () => {
      toastListeners.delete(f);
    };
  }, []);
  return (
    <div class="toasts" aria-live="polite" role="status">
      {toasts.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`} onClick={() => dismissToast(t.id)}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

// ---------- small controls ----------

export type DotColor = 'green' | 'amber' | 'red' | 'grey';

export function statusColor(status: string | undefined, enabled = true, cooling = false): DotColor {
  if (!enabled) return 'red';
  switch (status) {
    case 'healthy':
    case 'ok':
      return cooling ? 'amber' : 'green';
    case 'rate_limited':
    case 'cooling':
    case 'cooldown':
      return 'amber';
    case 'invalid':
    case 'error':
    case 'disabled':
      return 'red';
    default:
      return cooling ? 'amber' : 'grey';
  }
}

export function StatusDot({ color, label }: { color: DotColor; label: string }) {
  return <span class={`dot dot-${color}`} role="img" aria-label={label} title={label} />;
}

export function CopyButton({ text, label = 'Copy', class: cls = '' }: { text: string; label?: string; class?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
      else fallbackCopy(text);
      setDone(true);
      window.setTimeout(() => setDone(false), 1500);
    } catch {
      fallbackCopy(text);
      setDone(true);
    }
  };
  return (
    <button type="button" class={`btn btn-small ${cls}`} onClick={copy} aria-live="polite">
      {done ? 'Copied ✓' : label}
    </button>
  );
}

function fallbackCopy(text: string): void {
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.appendChild(ta);
  ta.select();
  try {
    document.execCommand('copy');
  } finally {
    ta.remove();
  }
}

/** A delete (or other destructive) button that asks for a second click. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  busy,
}: {
  label: string;
  confirmLabel: string;
  onConfirm: () => void | Promise<void>;
  busy?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" class="btn btn-small btn-danger-outline" onClick={() => setAsking(true)} disabled={busy}>
        {label}
      </button>
    );
  }
  return (
    <span
      class="confirm"
      role="group"
      aria-label={confirmLabel}
      onKeyDown={(e) => {
        if (e.key === 'Escape') setAsking(false);
      }}
    >
      <button
        ref={yes}
        type="button"
        class="btn btn-small btn-danger"
        onClick={async () => {
          await onConfirm();
          setAsking(false);
        }}
        disabled={busy}
      >
        {confirmLabel}
      </button>
      <button type="button" class="btn btn-small" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export function Switch({
  checked,
  onChange,
  label,
  disabled,
}: {
  checked: boolean;
  onChange: (v: boolean) => void;
  label: string;
  disabled?: boolean;
}) {
  return (
    <button
      type="button"
      role="switch"
      aria-checked={checked}
      aria-label={label}
      title={label}
      class="switch"
      disabled={disabled}
      onClick={() => onChange(!checked)}
    >
      <span class="switch-knob" aria-hidden="true" />
    </button>
  );
}

/** Click-to-edit text with Save/Cancel; Enter saves, Escape cancels. */
export function InlineEdit({
  value,
  label,
  onSave,
  placeholder,
  type = 'text',
  display,
}: {
  value: string;
  label: string;
  onSave: (v: string) => Promise<void>;
  placeholder?: string;
  type?: 'text' | 'number' | 'password';
  display?: ComponentChildren;
}) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(value);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (editing) input.current?.select();
  }, [editing]);
  if (!editing) {
    return (
      <button
        type="button"
        class="inline-edit"
        title={`Edit ${label}`}
        aria-label={`Edit ${label}: ${value || placeholder || 'empty'}`}
        onClick={() => {
          setDraft(value);
          setError(null);
          setEditing(true);
        }}
      >
        {display ?? (value || <span class="muted">{placeholder ?? '—'}</span>)}
        <span class="pencil" aria-hidden="true">
          ✎
        </span>
      </button>
    );
  }
  const save = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSave(draft.trim());
      setEditing(false);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="inline-form" onSubmit={save}>
      <input
        ref={input}
        class="input input-small"
        type={type}
        min={type === 'number' ? 0 : undefined}
        autocomplete={type === 'password' ? 'off' : undefined}
        value={draft}
        aria-label={label}
        placeholder={placeholder}
        onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') setEditing(false);
        }}
        disabled={busy}
      />
      <button type="submit" class="btn btn-small btn-primary" disabled={busy}>
        Save
      </button>
      <button type="button" class="btn btn-small" onClick={() => setEditing(false)} disabled={busy}>
        Cancel
      </button>
      {error ? (
        <span class="inline-error" role="alert">
          {errorMessage(error)}
        </span>
      ) : null}
    </form>
  );
}

export function Kpi({ label, value, sub, tone }: { label: string; value: string; sub?: ComponentChildren; tone?: 'bad' | 'ok' }) {
  return (
    <div class={`kpi ${tone ? `kpi-${tone}` : ''}`}>
      <div class="kpi-label">{label}</div>
      <div class="kpi-value">{value}</div>
      {sub && <div class="kpi-sub">{sub}</div>}
    </div>
  );
}

export function Gauge({ used, limit, label }: { used: number; limit?: number | null; label: string }) {
  const ratio = limit ? Math.min(1, used / limit) : 0;
  const tone = ratio >= 0.9 ? 'bad' : ratio >= 0.7 ? 'warn' : 'ok';
  return (
    <div class="gauge">
      <div class="gauge-top">
        <span>{label}</span>
        <span class="num">
          {formatInt(used)}
          {limit ? ` / ${formatInt(limit)}` : ' (no cap)'}
        </span>
      </div>
      <div
        class="gauge-track"
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={limit ?? undefined}
        aria-valuenow={used}
      >
        <div class={`gauge-fill gauge-${limit ? tone : 'none'}`} style={{ width: `${limit ? ratio * 100 : 0}%` }} />
      </div>
    </div>
  );
}

export interface BarDatum {
  start: number;
  total: number;
  errors: number;
}

/** Requests-per-bucket bars (errors stacked in red), drawn in SVG. */
export function Bars({ data, label, height = 140 }: { data: BarDatum[]; label: string; height?: number }) {
  const max = Math.max(1, ...data.map((d) => d.total));
  const w = 100 / Math.max(1, data.length);
  const gap = Math.min(w * 0.2, 0.6);
  const totalReq = data.reduce((s, d) => s + d.total, 0);
  return (
    <figure class="bars">
      <svg viewBox={`0 0 100 ${height}`} preserveAspectRatio="none" role="img" aria-label={`${label}: ${formatInt(totalReq)} requests in ${data.length} buckets, peak ${formatInt(max)}`}>
        {[0.25, 0.5, 0.75].map((f) => (
          <line key={f} x1="0" x2="100" y1={height * f} y2={height * f} class="bars-grid" vector-effect="non-scaling-stroke" />
        ))}
        {data.map((d, i) => {
          const h = (d.total / max) * (height - 2);
          const eh = (Math.min(d.errors, d.total) / max) * (height - 2);
          const x = i * w + gap / 2;
          return (
            <g key={d.start}>
              <title>{`${formatTime(d.start)}: ${d.total} requests, ${d.errors} errors`}</title>
              <rect x={x} y={height - h} width={w - gap} height={h - eh} class="bar-ok" />
              {eh > 0 && <rect x={x} y={height - eh} width={w - gap} height={eh} class="bar-err" />}
              <rect x={i * w} y="0" width={w} height={height} fill="transparent" />
            </g>
          );
        })}
      </svg>
      {data.length > 1 && (
        <div class="bars-axis" aria-hidden="true">
          <span>{shortStamp(data[0].start, data[data.length - 1].start - data[0].start)}</span>
          <span>now</span>
        </div>
      )}
      <figcaption class="bars-caption">
        <span>
          <span class="swatch swatch-ok" aria-hidden="true" /> requests
        </span>
        <span>
          <span class="swatch swatch-err" aria-hidden="true" /> errors
        </span>
        <span class="muted">peak {formatInt(max)}</span>
      </figcaption>
    </figure>
  );
}

/** Axis label: the time for spans under 12 hours, else the date and time. */
function shortStamp(ts: number, span: number): string {
  const full = formatDateTime(ts);
  return span < 12 * 3_600_000 ? full.slice(11, 16) : `${full.slice(5, 10)} ${full.slice(11, 16)}`;
}

export function Field({
  label,
  hint,
  children,
  id,
}: {
  label: string;
  hint?: ComponentChildren;
  children: ComponentChildren;
  id: string;
}) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && (
        <div class="hint" id={`${id}-hint`}>
          {hint}
        </div>
      )}
    </div>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <h1>{title}</h1>
      {children && <div class="page-actions">{children}</div>}
    </header>
  );
}

export function Section({ title, children, actions, id }: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={id}>
      <div class="card-head">
        <h2 id={id}>{title}</h2>
        {actions && <div class="card-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}

export type InputEvent = JSX.TargetedEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, Event>;
export const val = (e: InputEvent): string => e.currentTarget.value;
