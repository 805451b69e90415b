/**
 * The executor's watchdog thread. The executor's main thread runs user code and may be stuck in it for any
 * length of time; this thread never is, so it is the one that hears interrupts (one byte each on the pipe
 * INTERRUPT_FD from the protocol process) and acts on them:
 *
 *   1. at once: marks the running cell interrupted in shared memory (kernel.interruptRequested() sees it even
 *      inside a loop that never yields) and asks the main thread to abort the cell's AbortSignal;
 *   2. after the grace period, if the cell still runs: pings the main thread. A main thread that answers is
 *      merely awaiting something, and its own grace timer ends the cell; one that does not is busy in
 *      synchronous code, so this thread terminates that execution through an inspector session
 *      (Runtime.terminateExecution, like a debugger's stop button). V8 unwinds the user code only; the
 *      context, and with it every variable of earlier cells, survives, and the main thread carries on.
 *
 * It also ends the whole executor when the pipe closes: the protocol process is gone, and the executor runs
 * in its own process group, where nothing else would stop a runaway cell.
 */
import { Session } from "node:inspector";
import * as net from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { PHASE, SLOT, packState, stateCell, statePhase } from "./messages.js";

interface WatchdogData {
  shared: SharedArrayBuffer;
  graceMs: number;
  fd: number;
}

const { shared, graceMs, fd } = workerData as WatchdogData;
const slots = new Int32Array(shared);
const port = parentPort!;
const session = new Session();
session.connectToMainThread();

let escalating = 0;
let pings = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const running = (cell: number) => Atomics.load(slots, SLOT.STATE) === packState(cell, PHASE.RUNNING);

function onInterrupt(): void {
  const state = Atomics.load(slots, SLOT.STATE);
  if (statePhase(state) !== PHASE.RUNNING) return;
  const cell = stateCell(state);
  Atomics.store(slots, SLOT.INTERRUPT, cell);
  port.postMessage({ type: "interrupt", cell });
  if (escalating === cell) return;
  escalating = cell;
  void escalate(cell);
}

async function escalate(cell: number): Promise<void> {
  await sleep(graceMs);
  while (running(cell)) {
    const n = ++pings;
    port.postMessage({ type: "ping", n });
    const deadline = Date.now() + 250;
    while (Atomics.load(slots, SLOT.PONG) < n && Date.now() < deadline) await sleep(10);
    if (Atomics.load(slots, SLOT.PONG) < n) {
      terminate(cell);
      return;
    }
    await sleep(500);
  }
}

function terminate(cell: number): void {
  const expected = packState(cell, PHASE.RUNNING);
  if (Atomics.compareExchange(slots, SLOT.STATE, expected, packState(cell, PHASE.TERMINATING)) !== expected) return;
  session.post("Runtime.terminateExecution", () => {});
  // The main thread acknowledges in SLOT.TERMINATED; repeat the news in case the termination swallowed it.
  const tell = () => {
    if (Atomics.load(slots, SLOT.TERMINATED) >= cell) return;
    port.postMessage({ type: "terminated", cell });
    setTimeout(tell, 200).unref();
  };
  tell();
}

const pipe = new net.Socket({ fd, readable: true, writable: false });
pipe.on("data", (bytes: Buffer) => {
  for (let i = 0; i < bytes.length; i++) onInterrupt();
});
const orphaned = () => process.kill(process.pid, "SIGKILL");
pipe.on("end", orphaned);
pipe.on("error", orphaned);
