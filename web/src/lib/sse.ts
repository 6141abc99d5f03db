// Incremental parser for Server-Sent Events (the `text/event-stream` format), fed with bytes or text in chunks that
// may split anywhere: inside a field, inside a CRLF pair, or inside a multi-byte UTF-8 character.

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export class SseParser {
  private decoder = new TextDecoder('utf-8');
  private buffer = '';
  private afterCr = false;
  private dataLines: string[] = [];
  private eventName = '';
  private lastId: string | undefined;
  private sawField = false;

  /** Feeds one chunk; returns the events it completed. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    // A CR that ended the previous chunk already ended a line: drop the LF that completes the CRLF pair.
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1);
    this.afterCr = false;
    // Only the new text can hold line ends: the kept remainder has none.
    const from = this.buffer.length;
    this.buffer += text;
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = from; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** Ends the stream. An event without its closing blank line is discarded, as the SSE specification says. */
  finish(): SseEvent[] {
    const rest = this.decoder.decode();
    const out = rest ? this.push(rest) : [];
    this.buffer = '';
    this.dataLines = [];
    this.eventName = '';
    this.sawField = false;
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.sawField && this.dataLines.length > 0) {
        const ev: SseEvent = { event: this.eventName || 'message', data: this.dataLines.join('\n') };
        if (this.lastId !== undefined) ev.id = this.lastId;
        out.push(ev);
      }
      this.dataLines = [];
      this.eventName = '';
      this.sawField = false;
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.sawField = true;
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        break;
      case 'event':
        this.eventName = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      default:
        break; // `retry` and unknown fields are ignored
    }
  }
}

/** One step of an OpenAI-style chat completion stream. */
export type ChatStreamItem =
  | { kind: 'delta'; content: string; reasoning: string; finishReason?: string; model?: string }
  | { kind: 'usage'; promptTokens?: number; completionTokens?: number }
  | { kind: 'done' }
  | { kind: 'error'; message: string; code?: string; type?: string };

/** Interprets one SSE event of a `/v1/chat/completions` stream. Returns nothing for frames with no meaning here. */
export function interpretChatEvent(ev: SseEvent): ChatStreamItem[] {
  const data = ev.data.trim();
  if (data === '[DONE]') return [{ kind: 'done' }];
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return [{ kind: 'error', message: `the stream sent a frame that is not JSON: ${truncate(data, 120)}` }];
  }
  if (!json || typeof json !== 'object') return [];
  const obj = json as Record<string, unknown>;
  const items: ChatStreamItem[] = [];
  if (obj.error !== undefined && obj.error !== null) {
    const err = obj.error as Record<string, unknown> | string;
    if (typeof err === 'string') return [{ kind: 'error', message: err }];
    return [
      {
        kind: 'error',
        message: typeof err.message === 'string' && err.message ? err.message : 'the provider reported an error',
        code: typeof err.code === 'string' ? err.code : undefined,
        type: typeof err.type === 'string' ? err.type : undefined,
      },
    ];
  }
  const choices = Array.isArray(obj.choices) ? (obj.choices as Record<string, unknown>[]) : [];
  const choice = choices[0];
  if (choice) {
    const delta = (choice.delta ?? {}) as Record<string, unknown>;
    const content = typeof delta.content === 'string' ? delta.content : '';
    const reasoning =
      typeof delta.reasoning_content === 'string'
        ? delta.reasoning_content
        : typeof delta.reasoning === 'string'
          ? delta.reasoning
          : '';
    const finishReason = typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined;
    if (content || reasoning || finishReason) {
      items.push({
        kind: 'delta',
        content,
        reasoning,
        finishReason,
        model: typeof obj.model === 'string' ? obj.model : undefined,
      });
    }
  }
  const usage = obj.usage as Record<string, unknown> | undefined | null;
  if (usage && typeof usage === 'object') {
    items.push({
      kind: 'usage',
      promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : undefined,
      completionTokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : undefined,
    });
  }
  return items;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
