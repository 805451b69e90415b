/**
 * Whether the tensor backend can be trusted after a cell failed. tfjs's wasm backend does not survive a trap
 * inside its WebAssembly (an allocation beyond 4 GB, a kernel reading past its buffers: "memory access out of
 * bounds", "null function or function signature mismatch", "Aborted()"): often every later tensor op fails the
 * same way, and when they do not, the allocator's state is unknown; tfjs cannot re-create the backend in the
 * same process. So the kernel replaces the executor process when a cell's error is such a trap, or when one
 * tiny op fails on a tfjs copy this process has loaded (found in require's cache: nothing is loaded for the
 * check; it catches a trap that a cell caught or wrapped).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface TfjsCore {
  getBackend(): string | undefined | null;
  tidy<T>(fn: () => T): T;
  scalar(value: number): unknown;
  add(a: unknown, b: unknown): { dataSync(): ArrayLike<number> };
}

const TFJS_CORE = /[/\\]@tensorflow[/\\]tfjs-core[/\\]dist[/\\][^/\\]+\.js$/;

function loadedTfjsCores(): TfjsCore[] {
  return Object.keys(require.cache)
    .filter((id) => TFJS_CORE.test(id))
    .map((id) => require.cache[id]!.exports as Partial<TfjsCore>)
    .filter((tf): tf is TfjsCore => typeof tf.tidy === "function" && typeof tf.getBackend === "function");
}

/** A WebAssembly trap inside tfjs's wasm backend, in `e` or its causes. */
function wasmBackendTrap(e: unknown): Error | undefined {
  for (let cause = e, depth = 0; cause instanceof Error && depth < 8; depth++) {
    if (cause instanceof WebAssembly.RuntimeError && /tfjs-backend-wasm/.test(cause.stack ?? "")) return cause;
    cause = cause.cause;
  }
  return undefined;
}

/** Why the tensor backend cannot be trusted after `error`, or undefined when it works (or was never used). */
export function brokenBackend(error: unknown): string | undefined {
  const trap = wasmBackendTrap(error);
  if (trap) return `${trap.name}: ${trap.message}`;
  for (const tf of loadedTfjsCores()) {
    let backend: string | undefined | null;
    try {
      backend = tf.getBackend();
    } catch {
      continue; // no backend initialised yet
    }
    if (!backend) continue;
    try {
      const two = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)).dataSync()[0]);
      if (two !== 2) return `1 + 1 gives ${two} on the ${backend} backend`;
    } catch (e) {
      return `${(e as Error)?.name ?? "Error"}: ${(e as Error)?.message ?? e} (${backend} backend)`;
    }
  }
  return undefined;
}
