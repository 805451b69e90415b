/**
 * The Jupyter wire protocol (messaging spec 5.3): frames ↔ messages, HMAC-SHA256 signatures.
 *
 *   [zmq identities…, "<IDS|MSG>", hex HMAC, header, parent_header, metadata, content, buffers…]
 *
 * The signature covers the four JSON frames exactly as sent. A message whose signature does not verify,
 * or that repeats a signature already seen (a replay), is rejected here and never reaches a handler.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";
const DELIMITER = "<IDS|MSG>";

export interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
  [key: string]: unknown;
}

export type Content = Record<string, unknown>;

export interface Message {
  identities: Buffer[];
  header: Header;
  parent_header: Header | Record<string, never>;
  metadata: Record<string, unknown>;
  content: Content;
  buffers: Buffer[];
}

export class WireError extends Error {
  override name = "WireError";
}

/** Signs and verifies with the connection file's key; an empty key disables signing (the spec allows it). */
export class Signer {
  private readonly key: Buffer;
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];

  constructor(
    key: string,
    scheme = "hmac-sha256",
    private readonly memory = 1 << 16,
  ) {
    if (scheme !== "hmac-sha256") throw new WireError(`unsupported signature_scheme "${scheme}" (only hmac-sha256)`);
    this.key = Buffer.from(key, "utf8");
  }

  get enabled(): boolean {
    return this.key.length > 0;
  }

  sign(parts: (Buffer | string)[]): string {
    if (!this.enabled) return "";
    const hmac = createHmac("sha256", this.key);
    for (const p of parts) hmac.update(p);
    return hmac.digest("hex");
  }

  /** Throws unless `signature` is the HMAC of `parts` and was not used before. */
  verify(signature: string, parts: Buffer[]): void {
    if (!this.enabled) return;
    const expected = Buffer.from(this.sign(parts), "utf8");
    const got = Buffer.from(signature, "utf8");
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw new WireError("invalid signature");
    if (this.seen.has(signature)) throw new WireError("duplicate signature (replayed message)");
    this.seen.add(signature);
    this.order.push(signature);
    if (this.order.length > this.memory) this.seen.delete(this.order.shift()!);
  }
}

function parseJson(frame: Buffer | undefined, what: string): Record<string, unknown> {
  if (frame === undefined) throw new WireError(`message has no ${what} frame`);
  const value: unknown = JSON.parse(frame.toString("utf8"));
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new WireError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Parses and verifies one multipart message from a ROUTER (shell, control, stdin) or other socket. */
export function decode(frames: Buffer[], signer: Signer): Message {
  const at = frames.findIndex((f) => f.length === DELIMITER.length && f.toString("latin1") === DELIMITER);
  if (at < 0) throw new WireError("message has no <IDS|MSG> delimiter");
  if (frames.length < at + 6) throw new WireError("message has fewer than 4 JSON frames");
  const signature = frames[at + 1]!.toString("utf8");
  const parts = frames.slice(at + 2, at + 6);
  signer.verify(signature, parts);
  const header = parseJson(parts[0], "header") as unknown as Header;
  if (typeof header.msg_type !== "string" || typeof header.msg_id !== "string") throw new WireError("header lacks msg_type or msg_id");
  return {
    identities: frames.slice(0, at),
    header,
    parent_header: parseJson(parts[1], "parent_header") as Message["parent_header"],
    metadata: parseJson(parts[2], "metadata"),
    content: parseJson(parts[3], "content"),
    buffers: frames.slice(at + 6),
  };
}

/** The frames of a signed message. */
export function encode(message: Omit<Message, "buffers"> & { buffers?: Buffer[] }, signer: Signer): Buffer[] {
  const parts = [message.header, message.parent_header, message.metadata, message.content].map((p) =>
    Buffer.from(JSON.stringify(p), "utf8"),
  );
  return [...message.identities, Buffer.from(DELIMITER), Buffer.from(signer.sign(parts)), ...parts, ...(message.buffers ?? [])];
}

export function newHeader(msgType: string, session: string, username = "loralab"): Header {
  return { msg_id: randomUUID(), msg_type: msgType, session, username, date: new Date().toISOString(), version: PROTOCOL_VERSION };
}

/** A message replying to (or caused by) `parent`; shell/control replies go back to the parent's identities. */
export function child(
  parent: Message | undefined,
  msgType: string,
  content: Content,
  session: string,
  identities?: Buffer[],
  metadata: Record<string, unknown> = {},
): Message {
  return {
    identities: identities ?? [],
    header: newHeader(msgType, session, typeof parent?.header.username === "string" ? parent.header.username : "loralab"),
    parent_header: parent ? parent.header : {},
    metadata,
    content,
    buffers: [],
  };
}
