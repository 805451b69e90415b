/**
 * The WebAssembly SIMD kernels of simd-kernels.wat, instantiated on a tfjs-wasm backend's own memory, so they work
 * on tensors where they lie (byte offsets into the heap). fused-kernels.ts runs its passes through them on wasm;
 * without them (LORALAB_SIMD=off, or a runtime without wasm SIMD) it runs its JavaScript loops.
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend } from "./wasm-heap.js";
import { SIMD_KERNELS_WASM } from "./simd-kernels.wasm.js";

/** Pointers are byte offsets into the backend's heap; counts are elements. */
export interface SimdKernels {
  /** The largest of `n` floats. */
  rowMax(p: number, n: number): number;
  /** Σ e^(x − shift) over `n` floats, summed in float64. */
  expSum(p: number, n: number, shift: number): number;
  /** out = scale · e^(x − shift). */
  scaledExp(x: number, out: number, n: number, shift: number, scale: number): void;
  swiGlu(gate: number, up: number, y: number, n: number): void;
  swiGluGrad(gate: number, up: number, dy: number, dgate: number, dup: number, n: number): void;
  softmaxGrad(p: number, dy: number, dx: number, rows: number, width: number, scale: number): void;
  /** out = k · x + b. */
  scaleAdd(x: number, b: number, out: number, n: number, k: number): void;
  rmsNorm(x: number, w: number, y: number, rstd: number, rows: number, width: number, eps: number): void;
  /** x [rows, d] with the rows cycling through the t positions of cos and sin [t, d]. */
  rotary(x: number, cos: number, sin: number, y: number, rows: number, t: number, d: number, sign: number): void;
  /** `acc`: room for `width` float64s (scratch: dw's sums). */
  rmsNormGrad(x: number, w: number, rstd: number, dy: number, dx: number, dw: number, acc: number, rows: number, width: number): void;
}

interface EmscriptenAsm {
  asm?: { memory?: WebAssembly.Memory };
}

let compiled: WebAssembly.Module | undefined;
const instances = new WeakMap<WasmBackend, SimdKernels | null>();

/** Whether LORALAB_SIMD allows the SIMD kernels ("off" turns them off; anything else, or nothing, leaves them on). */
export function simdWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LORALAB_SIMD !== "off";
}

/** The kernels on `backend`'s memory, or undefined when turned off or when this runtime cannot run them. */
export function simdKernels(backend: WasmBackend): SimdKernels | undefined {
  let kernels = instances.get(backend);
  if (kernels === undefined) {
    kernels = instantiate(backend);
    instances.set(backend, kernels);
  }
  return kernels ?? undefined;
}

/** Whether the current backend runs the fused kernels' passes as SIMD (wasm, LORALAB_SIMD not off, SIMD supported). */
export function simdActive(): boolean {
  return tf.getBackend() === "wasm" && simdKernels(tf.backend() as unknown as WasmBackend) !== undefined;
}

function instantiate(backend: WasmBackend): SimdKernels | null {
  const memory = (backend.wasm as unknown as EmscriptenAsm).asm?.memory;
  if (!simdWanted() || !(memory instanceof WebAssembly.Memory)) return null;
  try {
    compiled ??= new WebAssembly.Module(Buffer.from(SIMD_KERNELS_WASM, "base64"));
    return new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdKernels;
  } catch {
    return null; // no wasm SIMD here: the JavaScript kernels do the work
  }
}
