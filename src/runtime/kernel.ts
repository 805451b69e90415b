/**
 * The kernel as seen from library code running inside a cell (the DSL's training loop, for instance).
 * Outside the loralab kernel every function here is a harmless no-op, so libraries may call them anywhere.
 *
 *   for (const batch of batches) {
 *     throwIfInterrupted();               // or: if (kernelSignal()?.aborted) break;
 *     step(batch);
 *     await new Promise(setImmediate);    // lets the kernel's messages in
 *   }
 *
 * An interrupt first asks politely: interruptRequested() turns true at once (it reads memory shared with the
 * kernel's watchdog thread, so it works even in a loop that never yields) and the cell's AbortSignal aborts
 * when the event loop next runs. Code that neither checks nor yields is stopped by force after a grace
 * period (LORALAB_INTERRUPT_GRACE_MS, default 2000 ms).
 */
export const KERNEL_RUNTIME = Symbol.for("loralab.kernel");

export interface KernelRuntime {
  /** The running cell's signal; aborted (reason: an InterruptedError) when the cell is interrupted. */
  readonly signal: AbortSignal;
  interruptRequested(): boolean;
  throwIfInterrupted(): void;
  /** Shows a value in the running cell's output; the handle's update() replaces it (live plots). */
  display(value: unknown, options?: { displayId?: string; metadata?: Record<string, unknown> }): KernelDisplayHandle;
}

export interface KernelDisplayHandle {
  readonly displayId: string;
  update(value: unknown): KernelDisplayHandle;
}

/**
 * How the kernel shows an error, read from a property the error carries (not from its class name, so the
 * kernel needs to know no library class): "user" is bad input, explained by its message alone; "interrupt" is
 * a stop the user asked for. Unmarked errors are bugs and get their stack.
 */
export const ERROR_KIND = Symbol.for("loralab.errorKind");
export type ErrorKind = "user" | "interrupt";

export function errorKind(e: unknown): ErrorKind | undefined {
  const kind = typeof e === "object" && e !== null ? (e as Record<symbol, unknown>)[ERROR_KIND] : undefined;
  return kind === "user" || kind === "interrupt" ? kind : undefined;
}

/** The error an interrupted cell ends with. */
export class InterruptedError extends Error {
  override name = "Interrupted";
  readonly [ERROR_KIND]: ErrorKind = "interrupt";
  constructor(message = "stopped where the code checked for interrupts") {
    super(message);
  }
}

function runtime(): KernelRuntime | undefined {
  return (globalThis as Record<symbol, KernelRuntime | undefined>)[KERNEL_RUNTIME];
}

/** True when running in the loralab kernel. */
export function inKernel(): boolean {
  return runtime() !== undefined;
}

/** The running cell's AbortSignal, or undefined outside the kernel. */
export function kernelSignal(): AbortSignal | undefined {
  return runtime()?.signal;
}

/**
 * Shows `value` (its [Symbol.for("Jupyter.display")] bundle, else text) in the running cell's output and
 * returns a handle to update it in place; undefined outside the kernel.
 */
export function kernelDisplay(value: unknown): KernelDisplayHandle | undefined {
  return runtime()?.display(value);
}

/** True once the running cell has been asked to stop. */
export function interruptRequested(): boolean {
  return runtime()?.interruptRequested() ?? false;
}

/** Throws InterruptedError if the running cell has been asked to stop. */
export function throwIfInterrupted(): void {
  runtime()?.throwIfInterrupted();
}
