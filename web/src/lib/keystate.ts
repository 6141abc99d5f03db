// What the dashboard says about a provider key's state, from the key as `GET /api/keys` returned it and the latest
// WebSocket news about it. Pure: unit-tested (test/keystate.test.ts).
//
// The words are meant to be true: a key nothing is known about yet is "not checked yet" (grey), not "healthy"; a
// cooling key says why and until when; a key the provider refused is "excluded" from routing.
import type { LiveKey } from './live';
import { formatUntil } from './format';

export type KeyStateKind = 'disabled' | 'invalid' | 'cooling' | 'error' | 'limited' | 'recovered' | 'healthy' | 'unknown';
export type KeyColor = 'green' | 'amber' | 'red' | 'grey';

export interface KeyState {
  kind: KeyStateKind;
  color: KeyColor;
  /** One or two words for the status line. */
  word: string;
  /** A sentence for people: why, and what happens next. */
  detail: string;
  /** When a cooling key may be tried again (ms). */
  until_ms?: number;
  /** The failure class behind a cooldown, as the server names it. */
  cause?: string | null;
}

/** A cooldown with an absolute end (the API gives `remaining_ms` at load time). */
export interface Cooling {
  model: string;
  until_ms: number;
  reason?: string | null;
  message?: string | null;
}

export interface KeyStateInput {
  enabled: boolean;
  /** The stored status (`status`): the verdict of the last check, `invalid` after a refused credential, else `unknown`. */
  status?: string | null;
  status_reason?: string | null;
  /** How the router saw the key when the list was loaded (`live_status`). */
  live_status?: string | null;
  cooldowns?: Cooling[];
  /** The WebSocket's view, if any. */
  live?: LiveKey;
}

/** Cooldowns as absolute times, from `remaining_ms` counted from `loadedAt`. */
export function coolingOf(
  cooldowns: { model: string; remaining_ms: number; reason?: string | null; message?: string | null }[] | undefined,
  loadedAt: number,
): Cooling[] {
  return (cooldowns ?? []).map((c) => ({ model: c.model, until_ms: loadedAt + c.remaining_ms, reason: c.reason ?? null, message: c.message ?? null }));
}

/** Why a key cools, in words: the failure class of the attempt that started the cooldown. */
export function causeWords(reason: string | null | undefined, message?: string | null): string {
  switch (reason) {
    case 'rate_limited':
      return 'rate-limited';
    case 'quota_exhausted':
      return 'quota used up';
    case 'server_error':
      return 'server errors';
    case 'network':
      return 'connection error';
    case 'timeout':
      // A stream that sent no token in time, versus an upstream that did not answer at all.
      return message && /delta within|sent nothing|stall/i.test(message) ? 'stalled stream' : 'timed out';
    case 'model_not_found':
      return 'model not found';
    case 'proxy':
      return 'proxy failure';
    case 'unreachable':
      return 'no answer (timeout, connection error or stalled stream)';
    case 'set_by_another_instance':
      return 'a failure another gateway instance saw';
    case null:
    case undefined:
    case '':
      return 'reason not recorded yet';
    default:
      return reason.replace(/_/g, ' ');
  }
}

const NOT_CHECKED = 'No check and no request through this key since the gateway started: its state is not known yet.';

export function keyState(k: KeyStateInput, now: number = Date.now()): KeyState {
  const live = k.live;
  if (!k.enabled || live?.status === 'disabled') {
    return { kind: 'disabled', color: 'red', word: 'disabled', detail: 'Turned off: the router never picks it.' };
  }
  // News from the WebSocket after the list was loaded wins over the list (a snapshot's "healthy" only means "not
  // cooling and not invalid", so it is no news).
  const news = live && live.source === 'event' ? live : undefined;
  const invalid = news ? news.status === 'invalid' : live?.status === 'invalid' || k.live_status === 'invalid' || k.status === 'invalid';
  if (invalid) {
    const reason = news?.status === 'invalid' ? news.reason : k.status_reason;
    return {
      kind: 'invalid',
      color: 'red',
      word: 'excluded',
      detail: `Invalid key: the provider refused it, so it is out of rotation until it is edited or checked again${reason ? ` (${reason})` : ''}.`,
    };
  }

  // Cooling: the latest end among the list's cooldowns and the live one.
  const cooling: Cooling[] = (k.cooldowns ?? []).filter((c) => c.until_ms > now);
  if (live?.cooldown_until_ms && live.cooldown_until_ms > now) {
    cooling.push({ model: '', until_ms: live.cooldown_until_ms, reason: live.source === 'event' ? live.reason : undefined });
  }
  if (cooling.length > 0) {
    const last = cooling.reduce((a, b) => (b.until_ms > a.until_ms ? b : a));
    // The reason of the live event when it is the latest news, else that of the cooldown ending last.
    const withReason = news?.reason && news.cooldown_until_ms && news.cooldown_until_ms > now ? { reason: news.reason, message: null } : last.reason ? last : cooling.find((c) => c.reason) ?? last;
    const cause = causeWords(withReason.reason, withReason.message);
    return {
      kind: 'cooling',
      color: 'amber',
      word: `cooling: ${cause}`,
      detail: `Resting after ${cause}; tried again ${formatUntil(last.until_ms, now)}.`,
      until_ms: last.until_ms,
      cause: withReason.reason ?? null,
    };
  }

  // A cooldown the page saw end, and no success since: back in rotation, state not known again yet.
  const ended = (live?.cooldown_until_ms ?? 0) > 0 || (k.cooldowns ?? []).length > 0;
  const sawSuccess = (live?.last_ok_ms ?? 0) > 0;
  if (news?.status === 'healthy' || sawSuccess) {
    return { kind: 'healthy', color: 'green', word: 'healthy', detail: sawSuccess ? 'Answered a request just now.' : 'Passed its last check.' };
  }
  if (ended) {
    return { kind: 'recovered', color: 'grey', word: 'back in rotation', detail: 'Its cooldown ended: the next request that needs it tries it again.' };
  }
  if (news?.status === 'error') {
    return { kind: 'error', color: 'red', word: 'error', detail: news.reason ? `Last seen failing: ${news.reason}.` : 'Last seen failing.' };
  }
  switch (k.live_status ?? k.status) {
    case 'healthy':
      return { kind: 'healthy', color: 'green', word: 'healthy', detail: 'Served a request or passed a check, with no cooldown now.' };
    case 'cooldown_ended':
      return { kind: 'recovered', color: 'grey', word: 'back in rotation', detail: 'It failed and rested; no success since: the next request that needs it tries it again.' };
    case 'error':
      return { kind: 'error', color: 'red', word: 'error', detail: `Its last check failed${k.status_reason ? `: ${k.status_reason}` : ''}.` };
    case 'rate_limited':
      return {
        kind: 'limited',
        color: 'amber',
        word: 'rate-limited at last check',
        detail: `Its last check was refused for its rate limit${k.status_reason ? ` (${k.status_reason})` : ''}; no cooldown now.`,
      };
    default:
      return { kind: 'unknown', color: 'grey', word: 'not checked yet', detail: NOT_CHECKED };
  }
}
