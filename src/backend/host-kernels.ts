/**
 * Kernels written in JavaScript over a backend's own memory, for wasm and cpu: each reads its inputs and
 * writes its outputs in place (on wasm: views of the wasm heap; on cpu: the backend's arrays), so a fused
 * operation costs one pass and one output instead of a chain of tfjs ops and their intermediates.
 */
import * as tf from "@tensorflow/tfjs";
import { type SimdKernels, simdKernels } from "./simd-kernels.js";
import { Heap, type WasmBackend } from "./wasm-heap.js";

export type HostBackendName = "wasm" | "cpu";

/** What a host kernel may do with tensors of its backend. */
export interface Io {
  /** The values of an input or output, in place. On wasm, read after making all outputs (the heap may move). */
  read(t: tf.TensorInfo): Float32Array;
  readInt(t: tf.TensorInfo): Int32Array;
  /** A new float32 tensor (uninitialised on wasm). */
  output(shape: number[]): tf.TensorInfo;
  /** Frees a tensor made with `output` that the kernel does not return. */
  free(t: tf.TensorInfo): void;
  /** New tensors: the logistic sigmoid of `x`; the softmax of `x` over its last axis (wasm: vectorised C++). */
  sigmoid(x: tf.TensorInfo): tf.TensorInfo;
  softmax(x: tf.TensorInfo): tf.TensorInfo;
  /** wasm: the SIMD kernels (simd-kernels.ts) on this backend's heap, and where a tensor lies in it (bytes). */
  simd?: SimdKernels;
  offset(t: tf.TensorInfo): number;
}

const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

function softmaxRows(x: Float32Array, out: Float32Array, width: number): void {
  for (let base = 0; base < x.length; base += width) {
    let max = -Infinity;
    for (let i = base; i < base + width; i++) if (x[i]! > max) max = x[i]!;
    let sum = 0;
    for (let i = base; i < base + width; i++) {
      const e = Math.exp(x[i]! - max);
      out[i] = e;
      sum += e;
    }
    for (let i = base; i < base + width; i++) out[i] = out[i]! / sum;
  }
}

type Cwrapped = (...args: unknown[]) => void;
const wasmExports = new WeakMap<WasmBackend, { sigmoid: Cwrapped; softmax: Cwrapped }>();

function wasmIo(backend: WasmBackend): Io {
  const heap = new Heap(backend);
  let e = wasmExports.get(backend);
  if (!e) {
    e = {
      sigmoid: backend.wasm.cwrap("Sigmoid", null, ["number", "number"]),
      softmax: backend.wasm.cwrap("Softmax", null, ["number", "number", "number", "number"]),
    };
    wasmExports.set(backend, e);
  }
  const { sigmoid, softmax } = e;
  const output = (shape: number[]) => backend.makeOutput(shape, "float32");
  return {
    read: (t) => heap.floats(heap.of(t).offset, size(t.shape)),
    readInt: (t) => new Int32Array(backend.wasm.HEAPU8.buffer, heap.of(t).offset, size(t.shape)),
    output,
    free: (t) => void backend.disposeData(t.dataId),
    simd: simdKernels(backend),
    offset: (t) => heap.of(t).offset,
    sigmoid: (x) => {
      const out = output(x.shape);
      sigmoid(heap.of(x).id, heap.of(out).id);
      return out;
    },
    softmax: (x) => {
      const out = output(x.shape);
      const width = x.shape[x.shape.length - 1]!;
      softmax(heap.of(x).id, heap.of(out).id, width, size(x.shape) / width);
      return out;
    },
  };
}

interface CpuBackend {
  readSync(dataId: object): Float32Array | Int32Array;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

function cpuIo(backend: CpuBackend): Io {
  const output = (shape: number[]) => backend.makeTensorInfo(shape, "float32", new Float32Array(size(shape)));
  const read = (t: tf.TensorInfo) => backend.readSync(t.dataId) as Float32Array; // the backend's own array, not a copy
  return {
    read,
    readInt: (t) => backend.readSync(t.dataId) as Int32Array,
    output,
    free: (t) => void backend.disposeData(t.dataId),
    offset: () => {
      throw new Error("cpu tensors have no heap offset");
    },
    sigmoid: (x) => {
      const out = output(x.shape);
      const [xs, ys] = [read(x), read(out)];
      for (let i = 0; i < xs.length; i++) ys[i] = 1 / (1 + Math.exp(-xs[i]!));
      return out;
    },
    softmax: (x) => {
      const out = output(x.shape);
      softmaxRows(read(x), read(out), x.shape[x.shape.length - 1]!);
      return out;
    },
  };
}

export type HostKernel = (io: Io, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap) => tf.TensorInfo | tf.TensorInfo[];

/** Registers `kernel` under `name` for `backendName` (once). */
export function registerHostKernel(name: string, backendName: HostBackendName, kernel: HostKernel): void {
  if (tf.getKernel(name, backendName)) return;
  const io = (backend: unknown) => (backendName === "wasm" ? wasmIo(backend as WasmBackend) : cpuIo(backend as CpuBackend));
  tf.registerKernel({
    kernelName: name,
    backendName,
    kernelFunc: (({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap; backend: unknown }) =>
      kernel(io(backend), inputs, attrs ?? {})) as unknown as tf.KernelFunc,
  });
}
