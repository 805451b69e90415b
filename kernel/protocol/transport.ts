/**
 * What the request handler (handler.ts) needs from a transport, and the one piece of sending policy every
 * transport shares: stream batching. The zeromq transport (zmq-transport.ts) signs and puts messages on
 * sockets; tests drive the handler through an in-memory transport instead.
 */
import type { Message } from "./wire.js";

export type OutChannel = "shell" | "control" | "stdin" | "iopub";
export type InChannel = "shell" | "control" | "stdin";

export interface Transport {
  /** Sends a message (already addressed: replies carry their request's identities). */
  send(channel: OutChannel, message: Message): void;
  /** Resolves once everything sent so far has left. */
  drain(): Promise<void>;
}

/**
 * Joins consecutive stream messages of one cell and stream name (stdout, stderr) into one, sent at most
 * `delayMs` later: a loop printing 10,000 lines becomes a few messages, not 10,000. Any other message first
 * sends the pending stream text, so output keeps its order.
 */
export class StreamBatcher implements Transport {
  private pending: { message: Message; timer: NodeJS.Timeout } | undefined;

  constructor(
    private readonly inner: Transport,
    private readonly delayMs = 50,
    private readonly maxChars = 64 * 1024,
  ) {}

  send(channel: OutChannel, message: Message): void {
    if (channel === "iopub" && message.header.msg_type === "stream") return this.add(message);
    this.flush();
    this.inner.send(channel, message);
  }

  drain(): Promise<void> {
    this.flush();
    return this.inner.drain();
  }

  private add(message: Message): void {
    const p = this.pending;
    if (p && sameStream(p.message, message)) p.message.content.text = `${p.message.content.text}${message.content.text}`;
    else {
      this.flush();
      this.pending = { message: { ...message, content: { ...message.content } }, timer: setTimeout(() => this.flush(), this.delayMs) };
    }
    if (String(this.pending!.message.content.text).length > this.maxChars) this.flush();
  }

  flush(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    this.inner.send("iopub", p.message);
  }
}

function sameStream(a: Message, b: Message): boolean {
  return (
    a.content.name === b.content.name && (a.parent_header as { msg_id?: string }).msg_id === (b.parent_header as { msg_id?: string }).msg_id
  );
}
