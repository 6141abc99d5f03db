// The dashboard's WebSocket (`/ws`): one connection per logged-in tab, reconnecting with exponential backoff,
// feeding the pure reducer in live.ts. Components subscribe through `useLive()`.
import { useEffect, useState } from 'preact/hooks';
import { initialLiveState, reduceLive, type LiveState } from './live';

export type ConnState = 'idle' | 'connecting' | 'connected' | 'reconnecting';

type RawListener = (msg: Record<string, unknown>) => void;

class LiveStore {
  state: LiveState = initialLiveState();
  conn: ConnState = 'idle';
  retryAt = 0;
  private ws: WebSocket | null = null;
  private timer: number | undefined;
  private failures = 0;
  private wanted = false;
  private listeners = new Set<() => void>();
  private raw = new Set<RawListener>();
  private pending: unknown[] = [];
  private flushScheduled = false;

  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.open();
  }

  stop(): void {
    this.wanted = false;
    window.clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.state = initialLiveState();
    this.setConn('idle');
  }

  resync(): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'resync' }));
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every raw message, before batching (the playground follows its own request id). */
  onMessage(fn: RawListener): () => void {
    this.raw.add(fn);
    return () => this.raw.delete(fn);
  }

  private setConn(c: ConnState): void {
    this.conn = c;
    this.emit();
  }

  private emit(): void {
    this.listeners.forEach((fn) => fn());
  }

  private open(): void {
    if (!this.wanted) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.setConn(this.failures === 0 ? 'connecting' : 'reconnecting');
    ws.onopen = () => {
      this.failures = 0;
      this.setConn('connected');
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let msg: unknown;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === 'object') {
        const type = (msg as { type?: unknown }).type;
        // The server dropped events for this (slow) subscriber: ask for a fresh snapshot.
        if (type === 'resync' || type === 'lagged') {
          this.resync();
          return;
        }
        this.raw.forEach((fn) => fn(msg as Record<string, unknown>));
      }
      // Token ticks can arrive many per second across requests: apply them in one render per frame.
      this.pending.push(msg);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        const flush = () => {
          this.flushScheduled = false;
          const batch = this.pending;
          this.pending = [];
          const now = Date.now();
          let s = this.state;
          for (const m of batch) s = reduceLive(s, m, now);
          if (s !== this.state) {
            this.state = s;
            this.emit();
          }
        };
        if (document.hidden) window.setTimeout(flush, 250);
        else requestAnimationFrame(flush);
      }
    };
    ws.onclose = () => {
      this.ws = null;
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleReconnect(): void {
    if (!this.wanted) return;
    this.failures++;
    const base = Math.min(30_000, 1000 * 2 ** Math.min(this.failures - 1, 5));
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryAt = Date.now() + delay;
    this.setConn('reconnecting');
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.open(), delay);
  }

  /** Reconnect at once (the badge's "retry now"). */
  retryNow(): void {
    if (!this.wanted || this.conn === 'connected' || this.ws) return;
    window.clearTimeout(this.timer);
    this.open();
  }
}

export const live = new LiveStore();

export function useLive(): { state: LiveState; conn: ConnState; retryAt: number } {
  const [, setTick] = useState(0);
  useEffect(() => live.subscribe(() => setTick((t) => t + 1)), []);
  return { state: live.state, conn: live.conn, retryAt: live.retryAt };
}
