/**
 * How much tensor memory the backend allows, and the check that runs before anything large is allocated: a task
 * whose estimated need exceeds what is left fails with what it needs, what the backend allows and what to do,
 * instead of running the backend out of memory (on wasm an out-of-memory abort leaves every later op failing).
 */
import * as os from "node:os";
import { UserError } from "../core/errors.js";
import { backendInfo, tf } from "./index.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** "4.1 GiB", "476.7 MiB", "12.0 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * GiB) return `${(bytes / (1024 * GiB)).toFixed(1)} TiB`;
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

export interface MemoryLimit {
  /** Bytes of tensors the backend can hold at once. */
  bytes: number;
  /** "the wasm backend allows 4.0 GiB (WebAssembly's 32-bit heap)". */
  description: string;
}

/** WebAssembly memory is addressed with 32 bits: tfjs-backend-wasm's heap stops at 4 GiB. */
export const WASM_HEAP_BYTES = 4 * GiB;

/** The limit of the running backend: wasm's heap, else the machine's memory (cpu and native TensorFlow use it directly). */
export function backendMemoryLimit(): MemoryLimit {
  const name = backendInfo()?.name ?? tf.getBackend();
  if (name === "wasm")
    return { bytes: WASM_HEAP_BYTES, description: `the wasm backend allows ${formatBytes(WASM_HEAP_BYTES)} (WebAssembly's 32-bit heap)` };
  const total = os.totalmem();
  return { bytes: total, description: `the ${name} backend can use at most this machine's ${formatBytes(total)} of memory` };
}

/** What a task needs, part by part ("weights (float32)", "activations"). */
export interface MemoryNeed {
  what: string;
  bytes: number;
}

/**
 * Copies of each trainable weight a training step holds besides the weight itself: its gradient, AdamW's two
 * moments, and the new moments and value AdamW computes for every weight before writing any (so that a non-finite
 * update changes nothing).
 */
export const OPTIMIZER_COPIES = 6;

export const totalBytes = (needs: readonly MemoryNeed[]): number => needs.reduce((sum, n) => sum + n.bytes, 0);

/**
 * Throws a UserError unless `needs` fit in what the backend has left beside `inUse` bytes (default: the tensors
 * alive now). `task` says what was asked ("loading model X", "a training step of 8 × 512 tokens"); `remedies` what
 * to do instead, in the face's own words (flags on the command line, options in code).
 */
export function ensureFits(task: string, needs: readonly MemoryNeed[], remedies: readonly string[], inUse = tf.memory().numBytes): void {
  const limit = backendMemoryLimit();
  const need = totalBytes(needs);
  if (need + inUse <= limit.bytes) return;
  const parts = needs.filter((n) => n.bytes > 0).map((n) => `${n.what} ${formatBytes(n.bytes)}`);
  const used = inUse > 0 ? `, ${formatBytes(inUse)} of it already in use` : "";
  throw new UserError(
    `${task} needs ≈ ${formatBytes(need)} of tensor memory (${parts.join(", ")}); ${limit.description}${used}; ${remedies.length ? `try ${remedies.join(", or ")}` : "use a machine with more memory"}`,
  );
}
