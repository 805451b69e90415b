/**
 * A cell's life in the executor's main thread: it runs (compiler.ts), its last expression becomes an
 * execute_result, it waits for its async displays, and it ends once, reported to the protocol process as ok,
 * failed (with its error, and whether the tensor backend broke) or interrupted.
 *
 * Interrupts (see watchdog.ts for the other thread's part): the cell's AbortSignal aborts at once; after the
 * grace period a cell that is only awaiting is abandoned (tslab's interrupt()); a cell the watchdog
 * terminated in synchronous code is reported here when the watchdog says so. A compare-and-swap on memory
 * shared with the watchdog makes sure a termination only ever lands in the cell it was meant for.
 */
import { ERROR_KIND, type ErrorKind, InterruptedError } from "../../src/runtime/kernel.js";
import type { MimeBundle } from "../../src/runtime/display.js";
import { NO_RESULT, plainText, splitChart, toBundle } from "../rich-display.js";
import { brokenBackend } from "./backend-health.js";
import type { Compiler, CompileSink } from "./compiler.js";
import { backendFailedError, describeError, describeInterrupt, interruptedError, isInterrupt, RED, RESET } from "./cell-errors.js";
import { PHASE, SLOT, packState, type ExpressionResult, type FromExecutor } from "./messages.js";

interface Cell {
  id: number;
  count: number;
  code: string;
  controller: AbortController;
  diagnostics: string[];
  errors: unknown[];
  pending: Promise<unknown>[];
  interruptAsked: boolean;
  graceTimer?: NodeJS.Timeout;
  done: boolean;
  resolve: (outcome: Outcome) => void;
}

type Outcome = { kind: "ok" } | { kind: "failed" } | { kind: "interrupted"; how: string };

/** input() when the frontend cannot answer: bad use, explained by its message. */
class InputUnavailable extends Error {
  override name = "InputUnavailable";
  readonly [ERROR_KIND]: ErrorKind = "user";
}

export class Cells {
  private current: Cell | undefined;
  /** The cell that output belongs to when none runs: the last one (late output of async code). */
  private lastCellId = 0;
  private lastController = new AbortController();
  private readonly inputs = new Map<number, { resolve: (value: string) => void; reject: (e: Error) => void }>();
  private nextInput = 1;

  constructor(
    private readonly send: (m: FromExecutor) => void,
    private readonly compiler: Compiler,
    private readonly slots: Int32Array,
    private readonly graceMs: number,
  ) {}

  /** The cell id that output written now belongs to. */
  get outputCell(): number {
    return this.current?.id ?? this.lastCellId;
  }

  get signal(): AbortSignal {
    return this.current?.controller.signal ?? this.lastController.signal;
  }

  interruptRequested(): boolean {
    return this.current !== undefined && Atomics.load(this.slots, SLOT.INTERRUPT) === this.current.id;
  }

  /** An async display of the running cell: the cell reports done after it. */
  track(p: Promise<unknown>): void {
    this.current?.pending.push(p);
  }

  execute(id: number, code: string, count: number): void {
    let resolve!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((r) => (resolve = r));
    const cell: Cell = {
      id,
      count,
      code,
      controller: new AbortController(),
      diagnostics: [],
      errors: [],
      pending: [],
      interruptAsked: false,
      done: false,
      resolve,
    };
    this.current = cell;
    this.lastCellId = id;
    this.lastController = cell.controller;
    Atomics.store(this.slots, SLOT.STATE, packState(id, PHASE.RUNNING));
    // Attached before user code starts: a cell terminated in its synchronous part (whose stack, tslab's
    // execute() included, never returns) is still reported, by the watchdog's message.
    outcome.then((o) => this.report(cell, o));
    const sink: CompileSink = {
      value: (value) => this.result(cell, value),
      diagnostic: (text) => cell.diagnostics.push(text),
      error: (e) => cell.errors.push(e),
    };
    Promise.resolve()
      .then(() => this.compiler.execute(code, { id, count, code }, sink))
      .then(
        async (ok) => {
          await Promise.allSettled(cell.pending);
          this.finish(cell, ok ? { kind: "ok" } : { kind: "failed" });
        },
        (e) => {
          cell.errors.push(e);
          this.finish(cell, { kind: "failed" });
        },
      );
  }

  /** The value of the cell's last expression, as an execute_result. */
  private result(cell: Cell, value: unknown): void {
    if (typeof value === "object" && value !== null && NO_RESULT in value) return;
    const publish = (data: MimeBundle) => {
      const [main, chart] = splitChart(data);
      this.send({ type: "execute_result", cell: cell.id, data: main, metadata: {} });
      if (chart) this.send({ type: "display", cell: cell.id, update: false, content: { data: chart, metadata: {}, transient: {} } });
    };
    const failed = (e: unknown) => publish({ "text/plain": `${plainText(value)} (display failed: ${e})` });
    try {
      const bundle = toBundle(value);
      if (bundle instanceof Promise) cell.pending.push(bundle.then(publish, failed));
      else publish(bundle);
    } catch (e) {
      failed(e);
    }
  }

  /** Ends `cell` once; if the watchdog is terminating it, waits here to be terminated (and reported) instead. */
  private finish(cell: Cell, outcome: Outcome, terminated = false): void {
    if (cell.done) return;
    if (!terminated) {
      const running = packState(cell.id, PHASE.RUNNING);
      if (Atomics.compareExchange(this.slots, SLOT.STATE, running, packState(cell.id, PHASE.IDLE)) !== running) {
        const until = Date.now() + 5000;
        while (Date.now() < until) {
          // The termination lands here; the watchdog's "terminated" message then reports the cell.
        }
      }
    }
    Atomics.store(this.slots, SLOT.STATE, packState(cell.id, PHASE.IDLE));
    cell.done = true;
    clearTimeout(cell.graceTimer);
    if (this.current === cell) this.current = undefined;
    cell.resolve(outcome);
  }

  private report(cell: Cell, outcome: Outcome): void {
    const executed = (extra: Omit<Extract<FromExecutor, { type: "executed" }>, "type" | "id"> = {}) =>
      this.send({ type: "executed", id: cell.id, ...extra });
    if (outcome.kind === "ok") {
      // A `/** @module name */` cell is registered even with errors (tslab): show them as warnings.
      if (cell.diagnostics.length > 0)
        this.send({ type: "stream", cell: cell.id, name: "stderr", text: `${cell.diagnostics.join("\n")}\n` });
      return executed();
    }
    if (outcome.kind === "interrupted") return executed({ error: interruptedError(outcome.how), interrupted: true });
    if (cell.diagnostics.length > 0) {
      const evalue = cell.diagnostics.length === 1 ? cell.diagnostics[0]!.split("\n")[0]! : `${cell.diagnostics.length} errors`;
      return executed({ error: { ename: "TypeScriptError", evalue, traceback: cell.diagnostics.map((d) => `${RED}error${RESET} ${d}`) } });
    }
    const e = cell.errors[0];
    if (isInterrupt(e) || (cell.interruptAsked && e instanceof Error && e.name === "AbortError"))
      return executed({ error: describeInterrupt(e), interrupted: true });
    const error = cell.errors.length > 0 ? describeError(e) : { ename: "Error", evalue: "the cell failed", traceback: [] };
    const broken = brokenBackend(e);
    if (broken) return executed({ error: backendFailedError(error, broken), backendFailed: true });
    executed({ error });
  }

  /** user_expressions: each evaluated like a cell of its own, without an execute_result. */
  async evaluate(id: number, expressions: Record<string, string>, count: number): Promise<Record<string, ExpressionResult>> {
    const results: Record<string, ExpressionResult> = {};
    for (const [name, code] of Object.entries(expressions)) {
      let value: unknown;
      const diagnostics: string[] = [];
      const errors: unknown[] = [];
      const sink: CompileSink = { value: (v) => (value = v), diagnostic: (d) => diagnostics.push(d), error: (e) => errors.push(e) };
      try {
        if (await this.compiler.execute(code, { id, count, code }, sink)) {
          results[name] = { status: "ok", data: await toBundle(value), metadata: {} };
          continue;
        }
      } catch (e) {
        errors.push(e);
      }
      results[name] =
        diagnostics.length > 0
          ? { status: "error", ename: "TypeScriptError", evalue: diagnostics[0]!.split("\n")[0]!, traceback: diagnostics }
          : { status: "error", ...describeError(errors[0]) };
    }
    return results;
  }

  /** input() in a cell: one line from the frontend (through the protocol process's stdin channel). */
  input(prompt: unknown = "", options: { password?: boolean } = {}): Promise<string> {
    const cell = this.current;
    if (!cell) return Promise.reject(new InputUnavailable("input() works only while a cell runs"));
    const id = this.nextInput++;
    return new Promise<string>((resolve, reject) => {
      const signal = cell.controller.signal;
      const onAbort = () => {
        this.inputs.delete(id);
        reject(new InterruptedError("stopped while waiting for input"));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      const settle = () => signal.removeEventListener("abort", onAbort);
      this.inputs.set(id, {
        resolve: (value) => (settle(), resolve(value)),
        reject: (e) => (settle(), reject(e)),
      });
      this.send({ type: "input_request", cell: cell.id, id, prompt: String(prompt), password: options.password === true });
    });
  }

  answerInput(id: number, answer: { value?: string; error?: string }): void {
    const waiting = this.inputs.get(id);
    this.inputs.delete(id);
    if (answer.error !== undefined) waiting?.reject(new InputUnavailable(answer.error));
    else waiting?.resolve(answer.value ?? "");
  }

  /** The watchdog heard an interrupt for cell `id`: abort its signal now, abandon it after the grace period. */
  softInterrupt(id: number): void {
    const cell = this.current;
    if (cell?.id !== id || cell.interruptAsked) return;
    cell.interruptAsked = true;
    cell.controller.abort(new InterruptedError());
    cell.graceTimer = setTimeout(() => {
      if (cell.done) return;
      this.compiler.interrupt();
      this.finish(cell, { kind: "interrupted", how: `still waiting after the ${this.graceMs} ms grace period, the cell was abandoned` });
    }, this.graceMs);
  }

  /** A SIGINT to this process: interrupt the running cell. */
  interruptRunning(): void {
    if (this.current) this.softInterrupt(this.current.id);
  }

  /** The watchdog stopped cell `id`'s synchronous code by force. */
  terminated(id: number): void {
    Atomics.store(this.slots, SLOT.TERMINATED, id);
    const cell = this.current;
    if (!cell || cell.id !== id) return;
    cell.controller.abort(new InterruptedError());
    this.compiler.interrupt();
    this.finish(
      cell,
      { kind: "interrupted", how: `synchronous code was stopped by force after the ${this.graceMs} ms grace period` },
      true,
    );
  }
}
