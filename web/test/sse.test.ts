import { describe, expect, it } from 'vitest';
import { SseParser, interpretChatEvent, type SseEvent } from '../src/lib/sse';

const enc = new TextEncoder();

function feedBytes(bytes: Uint8Array, cuts: number[]): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  let last = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...p.push(bytes.slice(last, c)));
    last = c;
  }
  out.push(...p.finish());
  return out;
}

const STREAM =
  'data: {"choices":[{"delta":{"content":"Héllo"}}]}\n\n' +
  ': keep-alive\r\n\r\n' +
  'event: ping\r\ndata: a\r\ndata: b\r\n\r\n' +
  'data: {"choices":[{"delta":{"content":" wörld 🌍"}}]}\r\r' +
  'data: [DONE]\n\n';

describe('SseParser', () => {
  it('parses whole input', () => {
    const evs = feedBytes(enc.encode(STREAM), []);
    expect(evs.map((e) => e.data)).toEqual([
      '{"choices":[{"delta":{"content":"Héllo"}}]}',
      'a\nb',
      '{"choices":[{"delta":{"content":" wörld 🌍"}}]}',
      '[DONE]',
    ]);
    expect(evs[1].event).toBe('ping');
    expect(evs[0].event).toBe('message');
  });

  it('gives the same events for every single split point (bytes, incl. inside UTF-8 and CRLF)', () => {
    const bytes = enc.encode(STREAM);
    const expected = feedBytes(bytes, []);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(feedBytes(bytes, [cut])).toEqual(expected);
    }
  });

  it('gives the same events when fed one byte at a time', () => {
    const bytes = enc.encode(STREAM);
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    expect(feedBytes(bytes, cuts)).toEqual(feedBytes(bytes, []));
  });

  it('accepts string chunks and fields without a space after the colon', () => {
    const p = new SseParser();
    expect(p.push('data:x\n')).toEqual([]);
    expect(p.push('\n')).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('drops an unterminated final event and events with no data', () => {
    const p = new SseParser();
    expect(p.push('event: nothing\n\n')).toEqual([]);
    expect(p.push('data: partial')).toEqual([]);
    expect(p.finish()).toEqual([]);
  });

  it('keeps the last id', () => {
    const p = new SseParser();
    expect(p.push('id: 7\ndata: x\n\n')).toEqual([{ event: 'message', data: 'x', id: '7' }]);
  });
});

describe('interpretChatEvent', () => {
  const ev = (data: string): SseEvent => ({ event: 'message', data });

  it('recognises [DONE]', () => {
    expect(interpretChatEvent(ev('[DONE]'))).toEqual([{ kind: 'done' }]);
  });

  it('extracts content and reasoning deltas', () => {
    expect(interpretChatEvent(ev('{"model":"m","choices":[{"delta":{"content":"hi"}}]}'))).toEqual([
      { kind: 'delta', content: 'hi', reasoning: '', finishReason: undefined, model: 'm' },
    ]);
    expect(interpretChatEvent(ev('{"choices":[{"delta":{"reasoning_content":"think"}}]}'))[0]).toMatchObject({
      reasoning: 'think',
    });
  });

  it('ignores the role-only chunk and reads usage', () => {
    expect(interpretChatEvent(ev('{"choices":[{"delta":{"role":"assistant"}}]}'))).toEqual([]);
    expect(interpretChatEvent(ev('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}'))).toEqual([
      { kind: 'usage', promptTokens: 3, completionTokens: 5 },
    ]);
  });

  it('turns in-band error frames into errors with their message', () => {
    expect(
      interpretChatEvent(ev('{"error":{"message":"upstream stalled","type":"provider_error","code":"upstream_stream_stalled"}}')),
    ).toEqual([{ kind: 'error', message: 'upstream stalled', type: 'provider_error', code: 'upstream_stream_stalled' }]);
    expect(interpretChatEvent(ev('{"error":"boom"}'))).toEqual([{ kind: 'error', message: 'boom' }]);
  });

  it('reports a non-JSON frame as an error', () => {
    expect(interpretChatEvent(ev('garbage'))[0].kind).toBe('error');
  });
});
