/**
 * Whether the tensor backend still works after a cell failed. tfjs's wasm backend does not survive an abort
 * inside its WebAssembly (an allocation beyond 4 GB, a kernel reading past its buffers: "memory access out of
 * bounds", "null function or function signature mismatch", "Aborted()"): from then on every tensor op fails
 * the same way, and tfjs cannot re-create the backend in the same process. After a cell fails, the kernel
 * checks with one tiny op on each tfjs copy this process has loaded (found in require's cache, so nothing is
 * loaded for the check) and, when it fails, replaces the executor process.
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

/** Why the tensor backend is unusable (the error one op gives), or undefined when it works or was never used. */
export function brokenBackend(): string | undefined {
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
