/**
 * The protocol process: binds the five Jupyter sockets, verifies every message's HMAC, answers heartbeats,
 * control messages and everything that needs no user code itself, and hands cells, completions and
 * inspections to the executor process. It never runs user code, so a busy cell never delays a heartbeat,
 * an interrupt_request or a shutdown.
 */
import { randomUUID } from "node:crypto";
import { packageVersion } from "../src/core/package.js";
import { createRequire } from "node:module";
import * as zmq from "zeromq";
import { CHANNELS, endpoint, type Channel, type ConnectionInfo } from "./protocol/connection.js";
import { child, decode, encode, PROTOCOL_VERSION, Signer, WireError, type Content, type Message } from "./protocol/wire.js";
import { ExecutorClient, ExecutorDied, type OutputMessage } from "./executor/client.js";
import { History, type HistoryRequest } from "./history.js";
import { isComplete } from "./is-complete.js";
import type { ErrorInfo } from "./executor/messages.js";

const require = createRequire(import.meta.url);

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

  send(frames: Buffer[]): Promise<void> {
    this.chain = this.chain
      .then(() => (this.socket.closed ? undefined : this.socket.send(frames)))
      .catch((e: Error) => this.log(`send failed: ${e.message}`));
    return this.chain;
  }
}

const RED = "\u001b[0;31m";
const RESET = "\u001b[0m";

/** Jupyter's cursor positions count code points; JavaScript strings count UTF-16 units. */
export function codePointsToUtf16(s: string, cp: number): number {
  let i = 0;
  for (let n = 0; n < cp && i < s.length; n++) i += s.codePointAt(i)! > 0xffff ? 2 : 1;
  return i;
}

export function utf16ToCodePoints(s: string, i: number): number {
  return Array.from(s.slice(0, i)).length;
}

interface CellParent {
  msg: Message;
  silent: boolean;
  executionCount: number;
}

export interface KernelOptions {
  /** Grace period of an interrupt before the watchdog stops synchronous code by force (ms). */
  graceMs?: number;
  log?: (text: string) => void;
}

export class KernelServer {
  private readonly signer: Signer;
  private readonly session = randomUUID();
  private readonly sockets: { shell: zmq.Router; control: zmq.Router; stdin: zmq.Router; iopub: zmq.Publisher; hb: zmq.Reply };
  private readonly senders: Record<"shell" | "control" | "iopub" | "stdin" | "hb", Sender>;
  private readonly history = new History();
  private readonly executor: ExecutorClient;
  private readonly cells = new Map<number, CellParent>();
  private readonly queue: Message[] = [];
  private readonly version = packageVersion();
  private readonly tsVersion: string;
  private readonly tslabVersion: string;
  private readonly graceMs: number;
  private readonly log: (text: string) => void;
  private executionCount = 0;
  private draining = false;
  /** Set by a failed cell with stop_on_error: the cells queued behind it get "aborted" replies. */
  private abortAfterIdle = false;
  private running: { cell: number; interruptedAt?: number; fallback?: NodeJS.Timeout } | undefined;
  private stream: { cell: number; name: string; text: string; timer: NodeJS.Timeout } | undefined;
  private closed = false;
  private resolveClosed!: () => void;
  readonly closedPromise = new Promise<void>((r) => (this.resolveClosed = r));

  constructor(
    private readonly connection: ConnectionInfo,
    options: KernelOptions = {},
  ) {
    this.log = options.log ?? ((t) => process.stderr.write(`[loralab kernel] ${t}\n`));
    this.graceMs = options.graceMs ?? Number(process.env.LORALAB_INTERRUPT_GRACE_MS ?? 2000);
    this.signer = new Signer(connection.key, connection.signature_scheme);
    if (!this.signer.enabled) this.log("warning: the connection file has an empty key, so messages are not signed");
    this.tsVersion = (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version;
    this.tslabVersion = (require("tslab/package.json") as { version: string }).version;
    this.sockets = {
      shell: new zmq.Router(),
      control: new zmq.Router(),
      stdin: new zmq.Router(),
      iopub: new zmq.Publisher(),
      hb: new zmq.Reply(),
    };
    this.senders = {
      shell: new Sender(this.sockets.shell, this.log),
      control: new Sender(this.sockets.control, this.log),
      stdin: new Sender(this.sockets.stdin, this.log),
      iopub: new Sender(this.sockets.iopub, this.log),
      hb: new Sender(this.sockets.hb, this.log),
    };
    process.env.LORALAB_INTERRUPT_GRACE_MS = String(this.graceMs);
    this.executor = this.newExecutor();
  }

  private newExecutor(): ExecutorClient {
    return new ExecutorClient({
      onOutput: (m) => this.onOutput(m),
      onExit: (how) => this.onExecutorExit(how),
      log: this.log,
    });
  }

  async start(): Promise<void> {
    await Promise.all(CHANNELS.map((c: Channel) => this.sockets[c].bind(endpoint(this.connection, c))));
    this.publish(undefined, "status", { execution_state: "starting" });
    void this.serveHeartbeat();
    void this.serve("shell", this.sockets.shell, (m) => this.enqueue(m));
    void this.serve("control", this.sockets.control, (m) => this.onControl(m));
    void this.serve("stdin", this.sockets.stdin, (m) => this.log(`ignored ${m.header.msg_type} on stdin`));
  }

  private async serveHeartbeat(): Promise<void> {
    try {
      for await (const frames of this.sockets.hb) await this.sockets.hb.send(frames);
    } catch (e) {
      if (!this.closed) this.log(`heartbeat stopped: ${(e as Error).message}`);
    }
  }

  private async serve(name: string, socket: zmq.Router, handle: (m: Message) => void): Promise<void> {
    try {
      for await (const frames of socket) {
        let message: Message;
        try {
          message = decode(frames, this.signer);
        } catch (e) {
          // Never acted upon: a message that fails verification is dropped here, before any handler.
          this.log(`dropped a message on ${name}: ${e instanceof WireError ? e.message : `unreadable (${(e as Error).message})`}`);
          continue;
        }
        try {
          handle(message);
        } catch (e) {
          this.log(`error handling ${message.header.msg_type}: ${(e as Error).stack ?? e}`);
        }
      }
    } catch (e) {
      if (!this.closed) this.log(`${name} socket stopped: ${(e as Error).message}`);
    }
  }

  // ---- sending --------------------------------------------------------------------------------------------

  private publish(parent: Message | undefined, msgType: string, content: Content, metadata: Record<string, unknown> = {}): void {
    if (msgType !== "stream") this.flushStream();
    void this.senders.iopub.send(encode(child(parent, msgType, content, this.session, [], metadata), this.signer));
  }

  private reply(channel: "shell" | "control", parent: Message, content: Content): void {
    const msgType = parent.header.msg_type.replace(/_request$/, "_reply");
    void this.senders[channel].send(encode(child(parent, msgType, content, this.session, parent.identities), this.signer));
  }

  private status(parent: Message, state: "busy" | "idle"): void {
    this.publish(parent, "status", { execution_state: state });
  }

  private flushStream(): void {
    const s = this.stream;
    if (!s) return;
    this.stream = undefined;
    clearTimeout(s.timer);
    const parent = this.cells.get(s.cell);
    if (parent?.silent) return;
    this.publish(parent?.msg, "stream", { name: s.name, text: s.text });
  }

  private onOutput(m: OutputMessage): void {
    const parent = this.cells.get(m.cell);
    if (m.type === "stream") {
      if (this.stream && (this.stream.cell !== m.cell || this.stream.name !== m.name)) this.flushStream();
      if (this.stream) this.stream.text += m.text;
      else this.stream = { cell: m.cell, name: m.name, text: m.text, timer: setTimeout(() => this.flushStream(), 50) };
      if (this.stream.text.length > 64 * 1024) this.flushStream();
      return;
    }
    this.flushStream();
    if (parent?.silent) return;
    switch (m.type) {
      case "display":
        return this.publish(parent?.msg, m.update ? "update_display_data" : "display_data", m.content);
      case "clear_output":
        return this.publish(parent?.msg, "clear_output", { wait: m.wait });
      case "execute_result": {
        const count = parent?.executionCount ?? this.executionCount;
        const text = m.data["text/plain"];
        if (typeof text === "string") this.history.setOutput(count, text);
        return this.publish(parent?.msg, "execute_result", { execution_count: count, data: m.data, metadata: m.metadata });
      }
    }
  }

  // ---- control --------------------------------------------------------------------------------------------

  private onControl(m: Message): void {
    switch (m.header.msg_type) {
      case "interrupt_request":
        this.interrupt();
        return this.reply("control", m, { status: "ok" });
      case "shutdown_request":
        return void this.shutdown("control", m);
      case "kernel_info_request":
        return this.reply("control", m, this.kernelInfo());
      default:
        this.log(`ignored ${m.header.msg_type} on control`);
    }
  }

  /** Interrupts the running cell, if any (interrupt_request, or SIGINT to this process). */
  interrupt(): void {
    const running = this.running;
    if (!running) return;
    this.executor.interrupt();
    if (running.interruptedAt !== undefined) return;
    running.interruptedAt = Date.now();
    // Last resort, should the executor not answer at all: replace it (its variables are lost, and the cell's
    // error says so). The watchdog normally ends the cell well before this.
    running.fallback = setTimeout(() => {
      if (this.running !== running) return;
      this.log("the executor did not answer an interrupt; restarting it");
      this.executor.restart();
    }, this.graceMs + 2500);
  }

  private async shutdown(channel: "shell" | "control", m: Message): Promise<void> {
    const restart = m.content.restart === true;
    this.reply(channel, m, { status: "ok", restart });
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushStream();
    await this.executor.shutdown();
    await Promise.race([Promise.allSettled(Object.values(this.senders).map((s) => s.idle())), new Promise((r) => setTimeout(r, 1000))]);
    for (const socket of Object.values(this.sockets)) socket.close();
    this.resolveClosed();
  }

  private onExecutorExit(how: string): void {
    if (this.closed) return;
    this.log(`the executor process ended (${how}); starting a new one`);
    this.executor.start();
  }

  // ---- shell ----------------------------------------------------------------------------------------------

  private enqueue(m: Message): void {
    this.queue.push(m);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.queue.length > 0 && !this.closed) {
      const m = this.queue.shift()!;
      this.status(m, "busy");
      try {
        await this.onShell(m);
      } catch (e) {
        this.log(`error handling ${m.header.msg_type}: ${(e as Error).stack ?? e}`);
      }
      this.status(m, "idle");
      if (this.abortAfterIdle) {
        this.abortAfterIdle = false;
        this.abortQueuedCells();
      }
    }
    this.draining = false;
  }

  private async onShell(m: Message): Promise<void> {
    const c = m.content;
    switch (m.header.msg_type) {
      case "kernel_info_request":
        return this.reply("shell", m, this.kernelInfo());
      case "execute_request":
        return this.execute(m);
      case "complete_request":
        return this.complete(m);
      case "inspect_request":
        return this.inspect(m);
      case "is_complete_request":
        return this.reply("shell", m, { ...isComplete(typeof c.code === "string" ? c.code : "") });
      case "history_request":
        return this.reply("shell", m, { status: "ok", history: this.history.query(c as HistoryRequest) });
      case "comm_info_request":
        return this.reply("shell", m, { status: "ok", comms: {} });
      case "comm_open":
        // No comm targets are registered: close it, as ipykernel does for an unknown target.
        return this.publish(m, "comm_close", { comm_id: c.comm_id, data: {} });
      case "comm_msg":
      case "comm_close":
        return;
      case "connect_request":
        return this.reply("shell", m, {
          status: "ok",
          shell_port: this.connection.shell_port,
          iopub_port: this.connection.iopub_port,
          stdin_port: this.connection.stdin_port,
          hb_port: this.connection.hb_port,
          control_port: this.connection.control_port,
        });
      case "shutdown_request":
        return this.shutdown("shell", m);
      case "interrupt_request":
        this.interrupt();
        return this.reply("shell", m, { status: "ok" });
      default:
        this.log(`ignored ${m.header.msg_type} on shell`);
    }
  }

  kernelInfo(): Content {
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: "loralab",
      implementation_version: this.version,
      language_info: {
        name: "typescript",
        version: this.tsVersion,
        mimetype: "text/typescript",
        file_extension: ".ts",
        pygments_lexer: "typescript",
        codemirror_mode: { name: "javascript", typescript: true },
        nbconvert_exporter: "script",
      },
      banner: `loralab ${this.version}: TypeScript ${this.tsVersion} (tslab ${this.tslabVersion}) on Node.js ${process.version}`,
      debugger: false,
    };
  }

  private async execute(m: Message): Promise<void> {
    const c = m.content;
    const code = typeof c.code === "string" ? c.code : "";
    const silent = c.silent === true;
    const storeHistory = !silent && c.store_history !== false;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.publish(m, "execute_input", { code, execution_count: count });
    if (storeHistory) this.history.add(count, code);

    const pager = /^\s*([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*\?\??\s*$/.exec(code);
    if (pager) return this.page(m, pager[1]!, count);

    let error: ErrorInfo | undefined;
    try {
      const outcome = await this.executor.execute(code, count, (cell) => {
        this.cells.set(cell, { msg: m, silent, executionCount: count });
        this.running = { cell };
        for (const old of this.cells.keys()) if (old < cell - 16) this.cells.delete(old);
      });
      error = outcome.error;
    } catch (e) {
      if (!(e instanceof ExecutorDied)) throw e;
      const interrupted = this.running?.interruptedAt !== undefined;
      const evalue = interrupted
        ? "the cell could not be interrupted, so the executor was restarted: the variables of earlier cells are lost"
        : `${e.message}; a new executor was started: the variables of earlier cells are lost`;
      error = {
        ename: interrupted ? "Interrupted" : "ExecutorDied",
        evalue,
        traceback: [`${RED}${interrupted ? "Interrupted" : "ExecutorDied"}${RESET}: ${evalue}`],
      };
    } finally {
      clearTimeout(this.running?.fallback);
      this.running = undefined;
    }
    this.flushStream();
    if (error) {
      if (!silent) this.publish(m, "error", { ...error });
      this.reply("shell", m, { status: "error", execution_count: count, ...error });
      if (c.stop_on_error !== false) this.abortAfterIdle = true;
    } else {
      this.reply("shell", m, { status: "ok", execution_count: count, payload: [], user_expressions: {} });
    }
  }

  /** After an error, cells already queued behind it are not run (ipykernel's stop_on_error). */
  private abortQueuedCells(): void {
    const kept: Message[] = [];
    for (const q of this.queue.splice(0)) {
      if (q.header.msg_type !== "execute_request") {
        kept.push(q);
        continue;
      }
      this.status(q, "busy");
      this.reply("shell", q, { status: "aborted", execution_count: this.executionCount });
      this.status(q, "idle");
    }
    this.queue.push(...kept);
  }

  /** `expr?` shows the documentation of expr in the pager (IPython's convention). */
  private async page(m: Message, expr: string, count: number): Promise<void> {
    const { found, text } = await this.executor.inspect(expr, expr.length, 1);
    if (!found) {
      this.publish(m, "stream", { name: "stdout", text: `Object \`${expr}\` not found.\n` });
      this.reply("shell", m, { status: "ok", execution_count: count, payload: [], user_expressions: {} });
      return;
    }
    const payload = [{ source: "page", data: { "text/plain": text }, start: 0 }];
    this.reply("shell", m, { status: "ok", execution_count: count, payload, user_expressions: {} });
  }

  private async complete(m: Message): Promise<void> {
    const code = typeof m.content.code === "string" ? m.content.code : "";
    const cursor = typeof m.content.cursor_pos === "number" ? m.content.cursor_pos : Array.from(code).length;
    const pos = codePointsToUtf16(code, cursor);
    const r = await this.executor.complete(code, pos);
    this.reply("shell", m, {
      status: "ok",
      matches: r.matches,
      cursor_start: utf16ToCodePoints(code, r.start),
      cursor_end: utf16ToCodePoints(code, r.end),
      metadata: {},
    });
  }

  private async inspect(m: Message): Promise<void> {
    const code = typeof m.content.code === "string" ? m.content.code : "";
    const cursor = typeof m.content.cursor_pos === "number" ? m.content.cursor_pos : Array.from(code).length;
    const detail = m.content.detail_level === 1 ? 1 : 0;
    const r = await this.executor.inspect(code, codePointsToUtf16(code, cursor), detail);
    this.reply("shell", m, { status: "ok", found: r.found, data: r.found ? { "text/plain": r.text } : {}, metadata: {} });
  }
}
