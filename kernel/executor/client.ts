/**
 * The protocol process's handle on the executor process (child.ts): forks it in its own process group,
 * exchanges requests and replies over IPC, writes interrupts to its pipe, and notices when it dies.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { Writable } from "node:stream";
import { INTERRUPT_FD, type ErrorInfo, type ExpressionResult, type FromExecutor, type ToExecutor } from "./messages.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.extname(fileURLToPath(import.meta.url));

export type OutputMessage = Extract<FromExecutor, { type: "stream" | "display" | "clear_output" | "execute_result" }>;

export type InputRequest = Extract<FromExecutor, { type: "input_request" }>;

export interface ExecuteOutcome {
  error?: ErrorInfo;
  interrupted?: boolean;
  backendFailed?: boolean;
}

/**
 * This process's Node.js options for the executor: without --inspect (one debugger port), and with the modules
 * of --import (a TypeScript loader, in tests) resolved here, since the executor may start in another folder.
 */
function portableExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith("--inspect")) continue;
    const value = arg === "--import" ? argv[i + 1] : undefined;
    if (value !== undefined && !value.startsWith(".") && !value.startsWith("/") && !/^[a-z]+:/.test(value)) {
      out.push(arg, import.meta.resolve(value));
      i++;
    } else out.push(arg);
  }
  return out;
}

export class ExecutorDied extends Error {
  override name = "ExecutorDied";
}

interface Pending {
  resolve: (m: FromExecutor) => void;
  reject: (e: Error) => void;
}

export interface ExecutorOptions {
  cwd?: string;
  /** Grace period of an interrupt before the watchdog stops synchronous code by force (ms). */
  graceMs?: number;
  /** Output of cells (and raw writes to the executor's stdout/stderr, tagged with the last cell). */
  onOutput: (m: OutputMessage) => void;
  /** A cell called input(): answer with answerInput(). */
  onInput: (request: InputRequest) => void;
  /** The executor exited on its own (not through shutdown()); `started`: it had been ready. */
  onExit: (description: string, started: boolean) => void;
  log: (text: string) => void;
}

export class ExecutorClient {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private lastCell = 0;
  /** Children whose exit is expected (killed or shut down on purpose): no onExit for them. */
  private readonly retiring = new WeakSet<ChildProcess>();
  ready!: Promise<{ typescript: string; tslab: string }>;

  constructor(private readonly options: ExecutorOptions) {
    this.start();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Forks a fresh executor (the previous one, if any, must be gone). */
  start(): void {
    const child = spawn(process.execPath, [...portableExecArgv(), path.join(here, `child${ext}`)], {
      cwd: this.options.cwd ?? process.cwd(),
      // stdin, stdout, stderr, IPC, interrupt pipe. Its own process group: a SIGINT that Jupyter sends to the
      // kernel's group reaches only this process, which turns it into exactly one interrupt.
      stdio: ["ignore", "pipe", "pipe", "ipc", "pipe"],
      detached: true,
      env: {
        ...process.env,
        LORALAB_KERNEL: "1",
        ...(this.options.graceMs === undefined ? {} : { LORALAB_INTERRUPT_GRACE_MS: String(this.options.graceMs) }),
      },
    });
    this.child = child;
    let started = false;
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: FromExecutor) => {
        if (m.type === "ready") {
          started = true;
          child.off("message", onMessage);
          resolve({ typescript: m.typescript, tslab: m.tslab });
        }
      };
      child.on("message", onMessage);
      child.once("exit", () => reject(new ExecutorDied("the executor exited while starting")));
    });
    this.ready.catch(() => {});
    child.on("message", (m: FromExecutor) => this.onMessage(m));
    for (const [stream, name] of [
      [child.stdout, "stdout"],
      [child.stderr, "stderr"],
    ] as const) {
      stream!.setEncoding("utf8");
      stream!.on("data", (text: string) => this.options.onOutput({ type: "stream", cell: this.lastCell, name, text }));
    }
    (child.stdio[INTERRUPT_FD] as Writable).on("error", () => {});
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = undefined;
      const description = signal ? `killed by ${signal}` : `exit code ${code}`;
      for (const p of this.pending.values()) p.reject(new ExecutorDied(`the executor process ended (${description})`));
      this.pending.clear();
      if (!this.retiring.has(child)) this.options.onExit(description, started);
    });
  }

  private onMessage(m: FromExecutor): void {
    switch (m.type) {
      case "stream":
      case "display":
      case "clear_output":
      case "execute_result":
        return this.options.onOutput(m);
      case "log":
        return this.options.log(`executor: ${m.text}`);
      case "input_request":
        return this.options.onInput(m);
      case "executed":
      case "evaluated":
      case "completed":
      case "inspected": {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.resolve(m);
        return;
      }
    }
  }

  private async request<T extends FromExecutor>(build: (id: number) => ToExecutor): Promise<T> {
    if (!this.child) this.start(); // one that could not start is tried again with each request
    await this.ready;
    const child = this.child;
    if (!child?.connected) throw new ExecutorDied("the executor is not running");
    const id = this.nextId++;
    const message = build(id);
    if (message.type === "execute") this.lastCell = id;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (m: FromExecutor) => void, reject });
      child.send(message, (e) => {
        if (e) {
          this.pending.delete(id);
          reject(new ExecutorDied(`cannot reach the executor: ${e.message}`));
        }
      });
    });
  }

  /** Runs a cell; `onStart` learns the cell id before any output can arrive. */
  async execute(code: string, executionCount: number, onStart: (cell: number) => void): Promise<ExecuteOutcome> {
    const m = await this.request<Extract<FromExecutor, { type: "executed" }>>((id) => {
      onStart(id);
      return { type: "execute", id, code, executionCount };
    });
    return { error: m.error, interrupted: m.interrupted, backendFailed: m.backendFailed };
  }

  /** user_expressions: each expression evaluated in the cells' context, as a mimebundle or an error. */
  async evaluate(expressions: Record<string, string>, executionCount: number): Promise<Record<string, ExpressionResult>> {
    const m = await this.request<Extract<FromExecutor, { type: "evaluated" }>>((id) => ({
      type: "evaluate",
      id,
      expressions,
      executionCount,
    }));
    return m.results;
  }

  /** The frontend's answer to an input_request (or why there is none). */
  answerInput(id: number, answer: { value: string } | { error: string }): void {
    if (this.child?.connected) this.child.send({ type: "input_reply", id, ...answer } satisfies ToExecutor, () => {});
  }

  async complete(code: string, pos: number): Promise<{ start: number; end: number; matches: string[] }> {
    const m = await this.request<Extract<FromExecutor, { type: "completed" }>>((id) => ({ type: "complete", id, code, pos }));
    return { start: m.start, end: m.end, matches: m.matches };
  }

  async inspect(code: string, pos: number, detail: number): Promise<{ found: boolean; text: string }> {
    const m = await this.request<Extract<FromExecutor, { type: "inspected" }>>((id) => ({ type: "inspect", id, code, pos, detail }));
    return { found: m.found, text: m.text };
  }

  /** One interrupt for whatever cell is running (none: nothing happens). */
  interrupt(): void {
    const pipe = this.child?.stdio[INTERRUPT_FD] as Writable | undefined;
    pipe?.write("i");
  }

  /** Replaces the executor by a fresh one at once (its variables are lost; pending requests fail). */
  restart(): void {
    const child = this.child;
    if (child) {
      this.retiring.add(child);
      child.kill("SIGKILL");
    }
    this.start();
  }

  /** Asks the executor to exit, and kills it if it has not within `graceMs`. */
  async shutdown(graceMs = 1000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    this.retiring.add(child);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    if (child.connected) child.send({ type: "shutdown" } satisfies ToExecutor, () => {});
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
