/** A temporary change of state that lasts while a function runs, including the promise it returns if any. */

/** Runs `fn`, then `restore`: when `fn` returns, throws, or, if it returns a promise, once that settles. */
export function thenRestore<T>(fn: () => T, restore: () => void): T {
  let out: T;
  try {
    out = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (out instanceof Promise) return out.finally(restore) as T;
  restore();
  return out;
}
