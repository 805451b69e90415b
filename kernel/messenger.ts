/**
 * How the handler addresses what it sends: replies go back to their request's sender, iopub messages name
 * the request that caused them (Jupyter frontends file output under its parent's msg_id).
 */
import { randomUUID } from "node:crypto";
import type { OutChannel, Transport } from "./protocol/transport.js";
import { child, type Content, type Message } from "./protocol/wire.js";

export class Messenger {
  readonly session = randomUUID();

  constructor(private readonly transport: Transport) {}

  publish(parent: Message | undefined, msgType: string, content: Content): void {
    this.transport.send("iopub", child(parent, msgType, content, this.session));
  }

  status(parent: Message | undefined, state: "starting" | "busy" | "idle"): void {
    this.publish(parent, "status", { execution_state: state });
  }

  /** The `_reply` to a `_request`, on the channel it came from. */
  reply(channel: Exclude<OutChannel, "iopub">, parent: Message, content: Content): void {
    const msgType = parent.header.msg_type.replace(/_request$/, "_reply");
    this.transport.send(channel, child(parent, msgType, content, this.session, parent.identities));
  }

  /** Asks the frontend that sent `parent` (an execute_request) for a line of input, on stdin; returns its msg_id. */
  inputRequest(parent: Message, prompt: string, password: boolean): string {
    const request = child(parent, "input_request", { prompt, password }, this.session, parent.identities);
    this.transport.send("stdin", request);
    return request.header.msg_id;
  }

  drain(): Promise<void> {
    return this.transport.drain();
  }
}

/** Jupyter's cursor positions count code points; JavaScript strings count UTF-16 units. */
export function codePointsToUtf16(s: string, cp: number): number {
  let i = 0;
  for (let n = 0; n < cp && i < s.length; n++) i += s.codePointAt(i)! > 0xffff ? 2 : 1;
  return i;
}

export function utf16ToCodePoints(s: string, i: number): number {
  return Array.from(s.slice(0, i)).length;
}
