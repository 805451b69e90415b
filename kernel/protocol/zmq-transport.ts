/**
 * The zeromq transport: binds the five Jupyter sockets, verifies every incoming message's HMAC before anything
 * reads it, answers heartbeats, and signs and sends what the handler gives it (one send at a time per socket,
 * streams batched). It knows nothing of cells: received messages go to the `receive` callback.
 */
import * as zmq from "zeromq";
import { CHANNELS, endpoint, type Channel, type ConnectionInfo } from "./connection.js";
import { StreamBatcher, type InChannel, type OutChannel, type Transport } from "./transport.js";
import { decode, encode, Signer, WireError, type Message } from "./wire.js";

/** Serialises sends: a zeromq.js socket takes one send at a time. */
class Sender {
  private chain: Promise<void> = Promise.resolve();
  constructor(
    private readonly socket: zmq.Writable & { readonly closed: boolean },
    private readonly log: (t: string) => void,
  ) {}

  /** Resolves when every send so far has been handed to zeromq. */
  idle(): Promise<void> {
    return this.chain;
  }

  send(frames: Buffer[]): void {
    this.chain = this.chain
      .then(() => (this.socket.closed ? undefined : this.socket.send(frames)))
      .catch((e: Error) => this.log(`send failed: ${e.message}`));
  }
}

/** Signs and sends on the sockets (the batcher in front of it joins stream messages). */
class SignedSockets implements Transport {
  constructor(
    private readonly signer: Signer,
    private readonly senders: Record<OutChannel, Sender>,
  ) {}

  send(channel: OutChannel, message: Message): void {
    this.senders[channel].send(encode(message, this.signer));
  }

  async drain(): Promise<void> {
    await Promise.allSettled(Object.values(this.senders).map((s) => s.idle()));
  }
}

export class ZmqTransport implements Transport {
  private readonly signer: Signer;
  private readonly sockets: { shell: zmq.Router; control: zmq.Router; stdin: zmq.Router; iopub: zmq.Publisher; hb: zmq.Reply };
  private readonly out: StreamBatcher;
  private closed = false;

  constructor(
    private readonly connection: ConnectionInfo,
    private readonly log: (text: string) => void,
  ) {
    this.signer = new Signer(connection.key, connection.signature_scheme);
    if (!this.signer.enabled) log("warning: the connection file has an empty key, so messages are not signed");
    this.sockets = {
      shell: new zmq.Router(),
      control: new zmq.Router(),
      stdin: new zmq.Router(),
      iopub: new zmq.Publisher(),
      hb: new zmq.Reply(),
    };
    const senders = {
      shell: new Sender(this.sockets.shell, log),
      control: new Sender(this.sockets.control, log),
      stdin: new Sender(this.sockets.stdin, log),
      iopub: new Sender(this.sockets.iopub, log),
    };
    this.out = new StreamBatcher(new SignedSockets(this.signer, senders));
  }

  /** The ports a connect_request reply names. */
  get ports(): Record<`${Channel}_port`, number> {
    const c = this.connection;
    return {
      shell_port: c.shell_port,
      iopub_port: c.iopub_port,
      stdin_port: c.stdin_port,
      hb_port: c.hb_port,
      control_port: c.control_port,
    };
  }

  /** Binds every socket, then hands each verified message to `receive`. */
  async start(receive: (channel: InChannel, message: Message) => void): Promise<void> {
    await Promise.all(CHANNELS.map((c: Channel) => this.sockets[c].bind(endpoint(this.connection, c))));
    void this.serveHeartbeat();
    for (const channel of ["shell", "control", "stdin"] as const) void this.serve(channel, receive);
  }

  send(channel: OutChannel, message: Message): void {
    if (!this.closed) this.out.send(channel, message);
  }

  drain(): Promise<void> {
    return this.out.drain();
  }

  /** Sends what is pending (waiting at most a second), then closes the sockets. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.race([this.drain(), new Promise((r) => setTimeout(r, 1000))]);
    this.closed = true;
    for (const socket of Object.values(this.sockets)) socket.close();
  }

  private async serveHeartbeat(): Promise<void> {
    try {
      for await (const frames of this.sockets.hb) await this.sockets.hb.send(frames);
    } catch (e) {
      if (!this.closed) this.log(`heartbeat stopped: ${(e as Error).message}`);
    }
  }

  private async serve(channel: InChannel, receive: (channel: InChannel, message: Message) => void): Promise<void> {
    try {
      for await (const frames of this.sockets[channel]) {
        let message: Message;
        try {
          message = decode(frames, this.signer);
        } catch (e) {
          // Never acted upon: a message that fails verification is dropped here, before any handler.
          this.log(`dropped a message on ${channel}: ${e instanceof WireError ? e.message : `unreadable (${(e as Error).message})`}`);
          continue;
        }
        try {
          receive(channel, message);
        } catch (e) {
          this.log(`error handling ${message.header.msg_type}: ${(e as Error).stack ?? e}`);
        }
      }
    } catch (e) {
      if (!this.closed) this.log(`${channel} socket stopped: ${(e as Error).message}`);
    }
  }
}
