// Number, time and duration formatting shared by every page. Pure functions: unit-tested.

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 1234567 → "1,234,567". Missing values → "—". */
export function formatInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return intFmt.format(Math.round(n));
}

/** 950 → "950", 1234 → "1.2k", 15300 → "15k", 2500000 → "2.5M". */
export function formatCompact(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  const units: [number, string][] = [
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, suffix] of units) {
    if (a >= size) {
      const v = a / size;
      const s = v >= 10 ? String(Math.round(v)) : trimZero(v.toFixed(1));
      // 999.95k rounds to "1000k": promote to the next unit.
      if (s === '1000' && suffix !== 'B') return `${sign}${suffix === 'k' ? '1M' : '1B'}`;
      return `${sign}${s}${suffix}`;
    }
  }
  return `${sign}${Math.round(a)}`;
}

function trimZero(s: string): string {
  return s.endsWith('.0') ? s.slice(0, -2) : s;
}

/** Ratio 0..1 → "98.7%". Values are clamped; missing → "—". */
export function formatPercent(ratio: number | null | undefined, digits = 1): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  const pct = Math.min(1, Math.max(0, ratio)) * 100;
  if (pct === 100 || pct === 0) return `${pct}%`;
  return `${trimZero(pct.toFixed(digits))}%`;
}

/** Milliseconds → "850 ms", "1.2 s", "12 s", "3m 05s", "2h 03m", "1d 4h". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${trimZero(s.toFixed(1))} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const totalS = Math.floor(s);
  const m = Math.floor(totalS / 60);
  if (m < 60) return `${m}m ${pad2(totalS % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad2(m % 60)}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** A past timestamp (ms) relative to `now`: "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatRelative(ts: number | null | undefined, now: number = Date.now()): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts) || ts <= 0) return 'never';
  const diff = now - ts;
  if (diff < 0) return 'in the future';
  const s = Math.floor(diff / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

/** A future timestamp relative to now, for cooldowns: "in 42 s", "in 3m 05s", or "now" once passed. */
export function formatUntil(ts: number | null | undefined, now: number = Date.now()): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts)) return '—';
  const diff = ts - now;
  if (diff <= 0) return 'now';
  return `in ${formatDuration(diff)}`;
}

/** Absolute local date-time, "2025-03-04 14:05:09". */
export function formatDateTime(ts: number | null | undefined): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts) || ts <= 0) return '—';
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(
    d.getMinutes(),
  )}:${pad2(d.getSeconds())}`;
}

/** Clock time only, "14:05:09". */
export function formatTime(ts: number | null | undefined): string {
  const full = formatDateTime(ts);
  return full === '—' ? full : full.slice(11);
}

/** Timestamps from the API may be seconds or milliseconds; normalise to milliseconds. */
export function toMs(ts: number | null | undefined): number | null {
  if (ts === null || ts === undefined || !Number.isFinite(ts)) return null;
  return ts < 1e11 ? ts * 1000 : ts;
}

/** Byte counts: "512 B", "1.5 KB", "23 MB" (powers of 1024). Missing → "—". */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = Math.max(0, n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = i === 0 || v >= 10 ? String(Math.round(v)) : trimZero(v.toFixed(1));
  return `${s} ${units[i]}`;
}
