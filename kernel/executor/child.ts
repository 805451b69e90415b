/**
 * The executor process: runs cells (cells.ts, with tslab: compiler.ts). The protocol process forks it and
 * talks over IPC; this process never touches a socket, so a busy cell delays nothing but itself. Its output
 * travels as IPC messages tagged with the cell it belongs to (output.ts); interrupts arrive through the
 * watchdog thread (watchdog.ts), which user code cannot block.
 *
 * "loralab" for cells: require("loralab") is this kernel's own package, its types are visible to the checker,
 * and the DSL's values are globals that load the DSL on first use (preload.ts, dsl-globals.ts).
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as util from "node:util";
import { Worker } from "node:worker_threads";
import { packageRoot } from "../../src/core/package.js";
import { InterruptedError, KERNEL_RUNTIME, type KernelRuntime } from "../../src/runtime/kernel.js";
import { Cells } from "./cells.js";
import { createCompiler, ts } from "./compiler.js";
import { defineLazyGlobals, exportedNames } from "./dsl-globals.js";
import { INTERRUPT_FD, SLOT, SLOTS, type FromExecutor, type ToExecutor } from "./messages.js";
import { captureOutput } from "./output.js";
import { addTypesFromExports, mapLoralabForTypeScript, resolveLoralabToSelf } from "./preload.js";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const ext = path.extname(fileURLToPath(import.meta.url));

function send(message: FromExecutor): void {
  if (process.connected) process.send!(message);
}

function log(text: string): void {
  send({ type: "log", text });
}

// "loralab" for cells, and the DSL's names as globals loaded on first use.
let dslNames: string[] = [];
try {
  const root = packageRoot();
  const entry = resolveLoralabToSelf(root);
  mapLoralabForTypeScript(ts, ts.sys.getCurrentDirectory(), root);
  addTypesFromExports(ts);
  // The DSL's `display` is for scripts; in cells the kernel's own (rich-display.ts) is the global.
  const names = exportedNames(ts, entry).filter((n) => n !== "display");
  dslNames = defineLazyGlobals(names, () => require(entry) as Record<string, unknown>);
} catch (e) {
  log(`the loralab DSL is not available in cells: ${(e as Error).stack ?? e}`);
}

const graceMs = Number(process.env.LORALAB_INTERRUPT_GRACE_MS ?? 2000);
const shared = new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
const slots = new Int32Array(shared);
const compiler = createCompiler({ cwd: process.cwd(), dslNames, log });
const cells = new Cells(send, compiler, slots, graceMs);
const { display, clearOutput } = captureOutput(
  send,
  () => cells.outputCell,
  (p) => cells.track(p),
);

const runtime: KernelRuntime = {
  get signal() {
    return cells.signal;
  },
  interruptRequested: () => cells.interruptRequested(),
  throwIfInterrupted() {
    if (cells.interruptRequested()) throw new InterruptedError();
  },
  display: (value, options) => display(value, options),
};
Object.defineProperty(globalThis, KERNEL_RUNTIME, { value: runtime, configurable: true });
const input = (prompt?: unknown, options?: { password?: boolean }) => cells.input(prompt, options);
Object.assign(globalThis, { display, clearOutput, input, kernel: runtime });

const watchdog = new Worker(path.join(here, `watchdog${ext}`), { workerData: { shared, graceMs, fd: INTERRUPT_FD } });
watchdog.unref();
watchdog.on("error", (e) => log(`watchdog failed: ${e.stack ?? e}`));
watchdog.on("message", (m: { type: string; cell?: number; n?: number }) => {
  if (m.type === "ping") Atomics.store(slots, SLOT.PONG, m.n!);
  else if (m.type === "interrupt") cells.softInterrupt(m.cell!);
  else if (m.type === "terminated") cells.terminated(m.cell!);
});

function complete(code: string, pos: number): { start: number; end: number; matches: string[] } {
  try {
    const info = compiler.complete(code, pos);
    return { start: info.start, end: info.end, matches: info.candidates };
  } catch (e) {
    log(`completion failed: ${(e as Error).stack ?? e}`);
    return { start: pos, end: pos, matches: [] };
  }
}

function inspect(code: string, pos: number): { found: boolean; text: string } {
  try {
    return compiler.inspect(code, pos);
  } catch (e) {
    log(`inspection failed: ${(e as Error).stack ?? e}`);
    return { found: false, text: "" };
  }
}

process.on("message", (m: ToExecutor) => {
  switch (m.type) {
    case "execute":
      return cells.execute(m.id, m.code, m.executionCount);
    case "evaluate":
      return void cells.evaluate(m.id, m.expressions, m.executionCount).then((results) => send({ type: "evaluated", id: m.id, results }));
    case "input_reply":
      return cells.answerInput(m.id, m);
    case "complete":
      return send({ type: "completed", id: m.id, ...complete(m.code, m.pos) });
    case "inspect":
      return send({ type: "inspected", id: m.id, ...inspect(m.code, m.pos) });
    case "shutdown":
      compiler.close();
      // The watchdog's inspector session would otherwise hold the exit ("Waiting for the debugger to disconnect").
      setTimeout(() => process.exit(0), 500).unref();
      return void watchdog.terminate().finally(() => process.exit(0));
  }
});
process.on("disconnect", () => process.exit(0));
// A SIGINT sent to this process itself: interrupt like the protocol process's pipe does (tslab's
// breakOnSigint covers a cell's synchronous first part on its own).
process.on("SIGINT", () => cells.interruptRunning());
process.on("uncaughtException", (e) => console.error(`Uncaught exception (outside a cell's flow): ${util.inspect(e)}`));
process.on("unhandledRejection", (e) => console.error(`Unhandled promise rejection: ${util.inspect(e)}`));

send({
  type: "ready",
  typescript: (require("@tslab/typescript-for-tslab/package.json") as { version: string }).version,
  tslab: (require("tslab/package.json") as { version: string }).version,
});
// The type checker's first program takes about a second: build it now, before the first cell asks.
setImmediate(() => compiler.warmUp());
