/**
 * The executor process: runs cells with tslab's converter (TypeScript → CommonJS, type-checked against the
 * declarations of earlier cells) and tslab's executor (vm.runInThisContext; top-level await; the variables of
 * every cell live on in one exports object). The protocol process forks it and talks over IPC; this process
 * never touches a socket, so a busy cell delays nothing but itself.
 *
 * Output: process.stdout/stderr writes, display(), clearOutput() and the cell's last expression become IPC
 * messages tagged with the cell they belong to (late output of a finished cell keeps its tag).
 * Interrupts: see watchdog.ts. The main thread's part is below: abort the cell's signal at once; after the
 * grace period end a cell that is merely awaiting (tslab's interrupt()); report a cell the watchdog
 * terminated.
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as util from "node:util";
import { Worker } from "node:worker_threads";
import type * as ConverterModule from "tslab/dist/converter.js";
import type * as ExecutorModule from "tslab/dist/executor.js";
import type * as InspectModule from "tslab/dist/inspect.js";
import type * as TS from "@tslab/typescript-for-tslab";
import { CELL_GLOBALS_DTS, createDisplayApi, NO_RESULT, normalizeBundle, plainText, toBundle, type MimeBundle } from "../display.js";
import { rewriteConfigLiterals } from "../sugar.js";
import { packageRoot } from "../../src/core/package.js";
import { errorKind, InterruptedError, KERNEL_RUNTIME, type KernelRuntime } from "../../src/runtime/kernel.js";
import { addTypesFromExports, dslGlobals, mapLoralabForTypeScript, preloadEsmImports, resolveLoralabToSelf } from "./preload.js";
import { INTERRUPT_FD, PHASE, SLOT, SLOTS, packState, type ErrorInfo, type FromExecutor, type ToExecutor } from "./messages.js";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.extname(fileURLToPath(import.meta.url));

function send(message: FromExecutor): void {
  if (process.connected) process.send!(message);
}

function log(text: string): void {
  send({ type: "log", text });
}

// ---- the cells' output -------------------------------------------------------------------------------

interface Cell {
  id: number;
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

let current: Cell | undefined;
/** The cell that output belongs to: the running one, else the last one (late output of async code). */
let lastCellId = 0;
let lastController = new AbortController();

const outputCell = () => current?.id ?? lastCellId;

function writer(name: "stdout" | "stderr") {
  return function write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const text =
      typeof chunk === "string"
        ? chunk
        : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
    if (text.length > 0) send({ type: "stream", cell: outputCell(), name, text });
    const cb = typeof encoding === "function" ? encoding : callback;
    if (typeof cb === "function") process.nextTick(cb as () => void);
    return true;
  };
}
process.stdout.write = writer("stdout") as typeof process.stdout.write;
process.stderr.write = writer("stderr") as typeof process.stderr.write;

const { display, clearOutput } = createDisplayApi(
  (event) => {
    if (event.kind === "clear") send({ type: "clear_output", cell: outputCell(), wait: event.wait });
    else
      send({
        type: "display",
        cell: outputCell(),
        update: event.update,
        content: { data: event.data, metadata: event.metadata, transient: { display_id: event.displayId } },
      });
  },
  (e) => console.error("display failed:", e),
  (p) => current?.pending.push(p),
);

// ---- interrupts: memory shared with the watchdog thread ----------------------------------------------------

const graceMs = Number(process.env.LORALAB_INTERRUPT_GRACE_MS ?? 2000);
const shared = new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
const slots = new Int32Array(shared);

const runtime: KernelRuntime = {
  get signal() {
    return current?.controller.signal ?? lastController.signal;
  },
  interruptRequested() {
    return current !== undefined && Atomics.load(slots, SLOT.INTERRUPT) === current.id;
  },
  throwIfInterrupted() {
    if (this.interruptRequested()) throw new InterruptedError();
  },
  display: (value, options) => display(value, options),
};
Object.defineProperty(globalThis, KERNEL_RUNTIME, { value: runtime, configurable: true });
Object.assign(globalThis, { display, clearOutput, kernel: runtime });

const watchdog = new Worker(path.join(here, `watchdog${ext}`), { workerData: { shared, graceMs, fd: INTERRUPT_FD } });
watchdog.unref();
watchdog.on("error", (e) => log(`watchdog failed: ${e.stack ?? e}`));
watchdog.on("message", (m: { type: string; cell?: number; n?: number }) => {
  if (m.type === "ping") Atomics.store(slots, SLOT.PONG, m.n!);
  else if (m.type === "interrupt") softInterrupt(m.cell!);
  else if (m.type === "terminated") {
    Atomics.store(slots, SLOT.TERMINATED, m.cell!);
    const cell = current;
    if (cell && cell.id === m.cell) {
      cell.controller.abort(new InterruptedError());
      executor.interrupt();
      finish(cell, { kind: "interrupted", how: `synchronous code was stopped by force after the ${graceMs} ms grace period` }, true);
    }
  }
});

function softInterrupt(id: number): void {
  const cell = current;
  if (cell?.id !== id || cell.interruptAsked) return;
  cell.interruptAsked = true;
  cell.controller.abort(new InterruptedError());
  cell.graceTimer = setTimeout(() => {
    if (cell.done) return;
    executor.interrupt();
    finish(cell, { kind: "interrupted", how: `still waiting after the ${graceMs} ms grace period, the cell was abandoned` });
  }, graceMs);
}

// ---- tslab ----------------------------------------------------------------------------------------------

const { createConverter } = require("tslab/dist/converter.js") as typeof ConverterModule;
const { createExecutor } = require("tslab/dist/executor.js") as typeof ExecutorModule;
const { printQuickInfo } = require("tslab/dist/inspect.js") as typeof InspectModule;
// tslab's own display API (import { display } from "tslab") writes through this hook.
const tslabJupyter = require("tslab/dist/jupyter.js") as { lastWriteDisplayData: unknown };
tslabJupyter.lastWriteDisplayData = (
  content: { data: MimeBundle; metadata?: Record<string, unknown>; transient?: { display_id?: string } },
  update: boolean,
) => {
  send({
    type: "display",
    cell: outputCell(),
    update,
    content: { data: normalizeBundle(content.data), metadata: content.metadata ?? {}, transient: content.transient ?? {} },
  });
};

// "loralab" for cells: the runtime module, its types, and the DSL's values as globals (preload.ts).
const ts = require("@tslab/typescript-for-tslab") as typeof TS;
const cwd = process.cwd();
let globalsDts = CELL_GLOBALS_DTS;
try {
  const root = packageRoot();
  const entry = resolveLoralabToSelf(root);
  mapLoralabForTypeScript(ts, ts.sys.getCurrentDirectory(), root);
  addTypesFromExports(ts);
  globalsDts += dslGlobals(entry).dts;
} catch (e) {
  log(`the loralab DSL is not preloaded: ${(e as Error).stack ?? e}`);
}

const DIAGNOSTIC_FORMAT = "%s%d:%d - %s";
let nodeConverter: ConverterModule.Converter | undefined;
let browserConverter: ConverterModule.Converter | undefined;
const converters = {
  get node() {
    if (!nodeConverter) {
      nodeConverter = createConverter({});
      const problems = nodeConverter.addModule("__loralab_globals__", globalsDts);
      if (problems.length > 0) log(`cell globals: ${problems.map((d) => d.messageText).join("; ")}`);
    }
    return nodeConverter;
  },
  get browser() {
    browserConverter ??= createConverter({ isBrowser: true });
    return browserConverter;
  },
  close() {
    nodeConverter?.close();
    browserConverter?.close();
  },
};
const executor = createExecutor(process.cwd(), converters, {
  // tslab logs the value of a cell's last expression here, and nothing else.
  log(value: unknown) {
    const cell = current;
    if (!cell || (typeof value === "object" && value !== null && NO_RESULT in value)) return;
    const publish = (data: MimeBundle) => send({ type: "execute_result", cell: cell.id, data, metadata: {} });
    try {
      const bundle = toBundle(value);
      if (bundle instanceof Promise)
        cell.pending.push(bundle.then(publish, (e) => publish({ "text/plain": `${plainText(value)} (display failed: ${e})` })));
      else publish(bundle);
    } catch (e) {
      publish({ "text/plain": `${plainText(value)} (display failed: ${e})` });
    }
  },
  // tslab reports compile diagnostics (with DIAGNOSTIC_FORMAT) and thrown values here.
  error(...args: unknown[]) {
    const cell = current;
    if (!cell) return;
    if (args[0] === DIAGNOSTIC_FORMAT) cell.diagnostics.push(describeDiagnostic(cell.code, args));
    else cell.errors.push(args[0]);
  },
});
converters.node; // warm up: the first program takes about a second

function describeDiagnostic(code: string, args: unknown[]): string {
  const [, file, line, column, message] = args as [string, string, number, number, string];
  const where = `${file ? `${file} ` : ""}${line}:${column}`;
  const source = file ? undefined : code.split("\n")[line - 1];
  if (source === undefined) return `${where} - ${message}`;
  return `${where} - ${message}\n    ${source}\n    ${" ".repeat(Math.max(0, column - 1))}^`;
}

// ---- errors ---------------------------------------------------------------------------------------------

const RED = "\u001b[0;31m";
const RESET = "\u001b[0m";
const kernelFrames = [path.dirname(require.resolve("tslab/package.json")), path.resolve(here, "..")];

function describeError(e: unknown): ErrorInfo {
  if (!(e instanceof Error)) {
    return { ename: "Uncaught", evalue: plainText(e), traceback: [`${RED}Uncaught${RESET} ${plainText(e)}`] };
  }
  const ename = e.name || e.constructor?.name || "Error";
  const evalue = e.message;
  const header = `${RED}${ename}${RESET}: ${evalue}`;
  // Bad input (a file, field or flag) and interrupts are explained by their message alone.
  if (errorKind(e) !== undefined) return { ename, evalue, traceback: [header] };
  const frames = (e.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l));
  const cut = frames.findIndex((l) => kernelFrames.some((dir) => l.includes(dir)) || /\(?node:(vm|internal\/process\/task_queues)/.test(l));
  const mine = (cut < 0 ? frames : frames.slice(0, cut)).map((l) => l.replace(/evalmachine\.<anonymous>/g, "<cell>"));
  return { ename, evalue, traceback: [header, ...mine] };
}

function interruptedError(how: string): ErrorInfo {
  const evalue = `the cell was interrupted (${how}); the kernel and the variables of earlier cells are intact`;
  return { ename: "Interrupted", evalue, traceback: [`${RED}Interrupted${RESET}: ${evalue}`] };
}

const isInterrupt = (e: unknown) =>
  e instanceof Error &&
  (errorKind(e) === "interrupt" ||
    (e as { code?: string }).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED" ||
    e.message === "Interrupted asynchronously");

// ---- cells ------------------------------------------------------------------------------------------------

function execute(id: number, code: string): void {
  let resolve!: (o: Outcome) => void;
  const outcome = new Promise<Outcome>((r) => (resolve = r));
  const cell: Cell = {
    id,
    code,
    controller: new AbortController(),
    diagnostics: [],
    errors: [],
    pending: [],
    interruptAsked: false,
    done: false,
    resolve,
  };
  current = cell;
  lastCellId = id;
  lastController = cell.controller;
  Atomics.store(slots, SLOT.STATE, packState(id, PHASE.RUNNING));
  // The handlers are attached before user code starts, so a cell terminated in its synchronous part (whose
  // stack, tslab's execute() included, never returns) is still reported, by the watchdog's message.
  outcome.then((o) => report(cell, o));
  Promise.resolve()
    .then(() => preloadEsmImports(ts, code, cwd))
    .then(() => executor.execute(rewriteConfigLiterals(code)))
    .then(
      async (ok) => {
        await Promise.allSettled(cell.pending);
        finish(cell, ok ? { kind: "ok" } : { kind: "failed" });
      },
      (e) => {
        cell.errors.push(e);
        finish(cell, { kind: "failed" });
      },
    );
}

/** Ends `cell` once; if the watchdog is terminating it, waits here to be terminated (and reported) instead. */
function finish(cell: Cell, outcome: Outcome, terminated = false): void {
  if (cell.done) return;
  if (!terminated) {
    const running = packState(cell.id, PHASE.RUNNING);
    if (Atomics.compareExchange(slots, SLOT.STATE, running, packState(cell.id, PHASE.IDLE)) !== running) {
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        // The termination lands here; the watchdog's "terminated" message then reports the cell.
      }
    }
  }
  Atomics.store(slots, SLOT.STATE, packState(cell.id, PHASE.IDLE));
  cell.done = true;
  clearTimeout(cell.graceTimer);
  if (current === cell) current = undefined;
  cell.resolve(outcome);
}

function report(cell: Cell, outcome: Outcome): void {
  if (outcome.kind === "ok") {
    // A `/** @module name */` cell is registered even with errors (tslab): show them as warnings.
    if (cell.diagnostics.length > 0) send({ type: "stream", cell: cell.id, name: "stderr", text: `${cell.diagnostics.join("\n")}\n` });
    return send({ type: "executed", id: cell.id });
  }
  if (outcome.kind === "interrupted")
    return send({ type: "executed", id: cell.id, error: interruptedError(outcome.how), interrupted: true });
  if (cell.diagnostics.length > 0) {
    const evalue = cell.diagnostics.length === 1 ? cell.diagnostics[0]!.split("\n")[0]! : `${cell.diagnostics.length} errors`;
    return send({
      type: "executed",
      id: cell.id,
      error: { ename: "TypeScriptError", evalue, traceback: cell.diagnostics.map((d) => `${RED}error${RESET} ${d}`) },
    });
  }
  const e = cell.errors[0];
  if (isInterrupt(e) || (cell.interruptAsked && e instanceof Error && e.name === "AbortError")) {
    const err = e as Error & { code?: string };
    const how =
      err instanceof InterruptedError
        ? err.message
        : err.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED"
          ? "stopped by SIGINT"
          : "stopped by the cell's AbortSignal";
    // A library's own interrupt error (the DSL's says which step a run reached and how to resume it) keeps its words.
    const info = errorKind(e) === "interrupt" && !(e instanceof InterruptedError) ? describeError(e) : interruptedError(how);
    return send({ type: "executed", id: cell.id, error: info, interrupted: true });
  }
  send({
    type: "executed",
    id: cell.id,
    error: cell.errors.length > 0 ? describeError(e) : { ename: "Error", evalue: "the cell failed", traceback: [] },
  });
}

function complete(code: string, pos: number): { start: number; end: number; matches: string[] } {
  try {
    const info = executor.complete(rewriteConfigLiterals(code), pos);
    return { start: info.start, end: info.end, matches: info.candidates };
  } catch (e) {
    log(`completion failed: ${(e as Error).stack ?? e}`);
    return { start: pos, end: pos, matches: [] };
  }
}

function inspect(code: string, pos: number): { found: boolean; text: string } {
  try {
    const info = executor.inspect(rewriteConfigLiterals(code), pos);
    return info ? { found: true, text: printQuickInfo(info) } : { found: false, text: "" };
  } catch (e) {
    log(`inspection failed: ${(e as Error).stack ?? e}`);
    return { found: false, text: "" };
  }
}

process.on("message", (m: ToExecutor) => {
  switch (m.type) {
    case "execute":
      return execute(m.id, m.code);
    case "complete":
      return send({ type: "completed", id: m.id, ...complete(m.code, m.pos) });
    case "inspect":
      return send({ type: "inspected", id: m.id, ...inspect(m.code, m.pos) });
    case "shutdown":
      converters.close();
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
// A SIGINT sent to this process itself: interrupt like the protocol process's pipe does (tslab's
// breakOnSigint covers a cell's synchronous first part on its own).
process.on("SIGINT", () => current && softInterrupt(current.id));
process.on("uncaughtException", (e) => console.error(`Uncaught exception (outside a cell's flow): ${util.inspect(e)}`));
process.on("unhandledRejection", (e) => console.error(`Unhandled promise rejection: ${util.inspect(e)}`));

send({
  type: "ready",
  typescript: (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version,
  tslab: (require("tslab/package.json") as { version: string }).version,
});
