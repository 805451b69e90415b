/**
 * Moving float32 tensor data in and out of the backend without dataSync's intermediate copy (a fresh
 * array per call, which costs more than the copy itself for large tensors in a loop): on wasm straight from
 * and to the heap, on cpu from the backend's own array.
 */
import * as tf from "@tensorflow/tfjs";
import { Heap, type WasmBackend } from "./wasm-heap.js";

interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } | undefined };
}

/** Copies the values of float32 tensor `t` into `target` from `offset` on. */
export function copyFloats(t: tf.Tensor, target: Float32Array, offset = 0): void {
  const backend = tf.backend();
  if (tf.getBackend() === "wasm") {
    const heap = new Heap(backend as unknown as WasmBackend);
    target.set(heap.floats(heap.of(t).offset, t.size), offset);
    return;
  }
  const values = tf.getBackend() === "cpu" ? (backend as unknown as CpuBackend).data.get(t.dataId)?.values : undefined;
  target.set(values instanceof Float32Array ? values : (t.dataSync() as Float32Array), offset);
}

/** A float32 tensor holding a copy of `values` (which may live in shared memory that changes later). */
export function tensorOfFloats(values: Float32Array, shape: number[]): tf.Tensor {
  // wasm copies into its heap when the tensor is made; other backends may keep the array itself.
  return tf.tensor(tf.getBackend() === "wasm" ? values : values.slice(), shape, "float32");
}
