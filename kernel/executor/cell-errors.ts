/**
 * How a failed cell reads in the notebook: the error's name and message, and for bugs (errors without a kind
 * marker) the stack, mapped to the cells (stack.ts). Bad input (a UserError) and interrupts are explained by
 * their message alone.
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { packageRoot } from "../../src/core/package.js";
import { errorKind, InterruptedError } from "../../src/runtime/kernel.js";
import { plainText } from "../rich-display.js";
import type { ErrorInfo } from "./messages.js";
import { readableFrames } from "./stack.js";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
export const RED = "\u001b[0;31m";
export const RESET = "\u001b[0m";

const root = packageRoot();
/** The kernel's own code (compiled, and its sources when a loader maps frames back to them) and tslab's. */
const stackOptions = {
  hidden: [path.dirname(require.resolve("tslab/package.json")), path.resolve(here, ".."), path.join(root, "kernel")],
  root,
};

export function describeError(e: unknown): ErrorInfo {
  if (!(e instanceof Error)) {
    return { ename: "Uncaught", evalue: plainText(e), traceback: [`${RED}Uncaught${RESET} ${plainText(e)}`] };
  }
  const ename = e.name || e.constructor?.name || "Error";
  const evalue = e.message;
  const header = `${RED}${ename}${RESET}: ${evalue}`;
  if (errorKind(e) !== undefined) return { ename, evalue, traceback: [header] };
  return { ename, evalue, traceback: [header, ...readableFrames(e.stack ?? "", stackOptions)] };
}

export function interruptedError(how: string): ErrorInfo {
  const evalue = `the cell was interrupted (${how}); the kernel and the variables of earlier cells are intact`;
  return { ename: "Interrupted", evalue, traceback: [`${RED}Interrupted${RESET}: ${evalue}`] };
}

export function isInterrupt(e: unknown): boolean {
  return (
    e instanceof Error &&
    (errorKind(e) === "interrupt" ||
      (e as { code?: string }).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED" ||
      e.message === "Interrupted asynchronously")
  );
}

/** How an interrupted cell's error reads: a library's own interrupt error keeps its words. */
export function describeInterrupt(e: unknown): ErrorInfo {
  const err = e as Error & { code?: string };
  // The DSL's own interrupt error says which step a run reached and how to resume it.
  if (errorKind(e) === "interrupt" && !(e instanceof InterruptedError)) return describeError(e);
  const how =
    err instanceof InterruptedError
      ? err.message
      : err.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED"
        ? "stopped by SIGINT"
        : "stopped by the cell's AbortSignal";
  return interruptedError(how);
}

/** The cell's error when the tensor backend broke: what failed, and that the executor starts afresh. */
export function backendFailedError(cause: ErrorInfo, why: string): ErrorInfo {
  const evalue =
    `the tensor backend failed (${why}) and was reset by starting a new executor: the variables of earlier cells are lost; ` +
    `re-run the cells that created models and data`;
  return {
    ename: "TensorBackendFailed",
    evalue,
    traceback: [`${RED}TensorBackendFailed${RESET}: ${evalue}`, "", "The error that revealed it:", ...cause.traceback],
  };
}
