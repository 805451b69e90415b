/**
 * The request handler: everything the kernel answers, independent of how messages travel. A transport
 * (protocol/zmq-transport.ts, or an in-memory one in tests) hands it verified messages through receive() and
 * sends what it gives back. Shell requests run one at a time in arrival order (busy → reply → idle); control
 * requests (interrupt, shutdown, kernel_info) are answered at once, also while a cell runs; user code runs in
 * the executor process (executor/), never here.
 */
import { createRequire } from "node:module";
import { packageVersion } from "../src/core/package.js";
import { ExecutorClient } from "./executor/client.js";
import { Execution } from "./execution.js";
import type { HistoryRequest } from "./history.js";
import { isComplete } from "./is-complete.js";
import { codePointsToUtf16, Messenger, utf16ToCodePoints } from "./messenger.js";
import type { InChannel, Transport } from "./protocol/transport.js";
import { PROTOCOL_VERSION, type Content, type Message } from "./protocol/wire.js";

const require = createRequire(import.meta.url);

export interface HandlerOptions {
  /** Grace period of an interrupt before the watchdog stops synchronous code by force (ms). */
  graceMs?: number;
  log?: (text: string) => void;
  /** The ports a connect_request reply names (the transport's). */
  ports?: Record<string, number>;
  /** The executor's working directory (where cells' relative paths and imports start). */
  cwd?: string;
}

export class KernelHandler {
  private readonly messenger: Messenger;
  private readonly executor: ExecutorClient;
  private readonly execution: Execution;
  private readonly log: (text: string) => void;
  private readonly queue: Message[] = [];
  private readonly version = packageVersion();
  private draining = false;
  /** Set by a failed cell with stop_on_error: the cells queued behind it get "aborted" replies. */
  private abortAfterIdle = false;
  private closing = false;
  private resolveClosed!: () => void;
  /** Resolves once the kernel has shut down (shutdown_request or close()). */
  readonly closed = new Promise<void>((r) => (this.resolveClosed = r));

  constructor(
    transport: Transport,
    private readonly options: HandlerOptions = {},
  ) {
    this.log = options.log ?? ((t) => process.stderr.write(`[loralab kernel] ${t}\n`));
    const graceMs = options.graceMs ?? Number(process.env.LORALAB_INTERRUPT_GRACE_MS ?? 2000);
    this.messenger = new Messenger(transport);
    this.executor = new ExecutorClient({
      cwd: options.cwd,
      graceMs,
      onOutput: (m) => this.execution.onOutput(m),
      onInput: (r) => this.execution.onInputRequest(r),
      onExit: (how, started) => this.onExecutorExit(how, started),
      log: this.log,
    });
    this.execution = new Execution(this.messenger, this.executor, graceMs, this.log);
  }

  /** The executor's process id (tests use it to see a restart). */
  get executorPid(): number | undefined {
    return this.executor.pid;
  }

  /** Tells the frontends the kernel is starting (once the transport listens). */
  start(): void {
    this.messenger.status(undefined, "starting");
  }

  receive(channel: InChannel, m: Message): void {
    if (this.closing) return;
    if (channel === "shell") this.enqueue(m);
    else if (channel === "control") this.onControl(m);
    else this.execution.onStdin(m);
  }

  /** Interrupts the running cell, if any (interrupt_request, or SIGINT to the kernel). */
  interrupt(): void {
    this.execution.interrupt();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.executor.shutdown();
    await this.messenger.drain();
    this.resolveClosed();
  }

  private onControl(m: Message): void {
    switch (m.header.msg_type) {
      case "interrupt_request":
        this.interrupt();
        return this.messenger.reply("control", m, { status: "ok" });
      case "shutdown_request":
        return void this.shutdown("control", m);
      case "kernel_info_request":
        return this.messenger.reply("control", m, this.kernelInfo());
      default:
        this.log(`ignored ${m.header.msg_type} on control`);
    }
  }

  private async shutdown(channel: "shell" | "control", m: Message): Promise<void> {
    this.messenger.reply(channel, m, { status: "ok", restart: m.content.restart === true });
    await this.close();
  }

  private onExecutorExit(how: string, started: boolean): void {
    if (this.closing) return;
    // One that never started would fail again at once: the next request tries again instead.
    if (!started) return this.log(`the executor process could not start (${how})`);
    this.log(`the executor process ended (${how}); starting a new one`);
    this.executor.start();
  }

  private enqueue(m: Message): void {
    this.queue.push(m);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.queue.length > 0 && !this.closing) {
      const m = this.queue.shift()!;
      this.messenger.status(m, "busy");
      try {
        if (await this.onShell(m)) this.abortAfterIdle = true;
      } catch (e) {
        this.log(`error handling ${m.header.msg_type}: ${(e as Error).stack ?? e}`);
      }
      this.messenger.status(m, "idle");
      if (this.abortAfterIdle) {
        this.abortAfterIdle = false;
        this.abortQueuedCells();
      }
    }
    this.draining = false;
  }

  /** Answers one shell request; true when it was a cell that failed with stop_on_error. */
  private async onShell(m: Message): Promise<boolean | void> {
    const c = m.content;
    switch (m.header.msg_type) {
      case "kernel_info_request":
        return this.messenger.reply("shell", m, this.kernelInfo());
      case "execute_request":
        return this.execution.execute(m);
      case "complete_request":
        return this.complete(m);
      case "inspect_request":
        return this.inspect(m);
      case "is_complete_request":
        return this.messenger.reply("shell", m, { ...isComplete(typeof c.code === "string" ? c.code : "") });
      case "history_request":
        return this.messenger.reply("shell", m, { status: "ok", history: this.execution.history.query(c as HistoryRequest) });
      case "comm_info_request":
        return this.messenger.reply("shell", m, { status: "ok", comms: {} });
      case "comm_open":
        // No comm targets are registered: close it, as ipykernel does for an unknown target.
        return this.messenger.publish(m, "comm_close", { comm_id: c.comm_id, data: {} });
      case "comm_msg":
      case "comm_close":
        return;
      case "connect_request":
        return this.messenger.reply("shell", m, { status: "ok", ...this.options.ports });
      case "shutdown_request":
        return this.shutdown("shell", m);
      case "interrupt_request":
        this.interrupt();
        return this.messenger.reply("shell", m, { status: "ok" });
      default:
        this.log(`ignored ${m.header.msg_type} on shell`);
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
      this.messenger.status(q, "busy");
      this.messenger.reply("shell", q, { status: "aborted", execution_count: this.execution.count });
      this.messenger.status(q, "idle");
    }
    this.queue.push(...kept);
  }

  kernelInfo(): Content {
    const tsVersion = (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version;
    const tslabVersion = (require("tslab/package.json") as { version: string }).version;
    return {
      status: "ok",
      protocol_version: PROTOCOL_VERSION,
      implementation: "loralab",
      implementation_version: this.version,
      language_info: {
        name: "typescript",
        version: tsVersion,
        mimetype: "text/typescript",
        file_extension: ".ts",
        pygments_lexer: "typescript",
        codemirror_mode: { name: "javascript", typescript: true },
        nbconvert_exporter: "script",
      },
      banner: `loralab ${this.version}: TypeScript ${tsVersion} (tslab ${tslabVersion}) on Node.js ${process.version}`,
      debugger: false,
    };
  }

  private async complete(m: Message): Promise<void> {
    const code = typeof m.content.code === "string" ? m.content.code : "";
    const cursor = typeof m.content.cursor_pos === "number" ? m.content.cursor_pos : Array.from(code).length;
    const r = await this.executor.complete(code, codePointsToUtf16(code, cursor));
    this.messenger.reply("shell", m, {
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
    this.messenger.reply("shell", m, { status: "ok", found: r.found, data: r.found ? { "text/plain": r.text } : {}, metadata: {} });
  }
}
