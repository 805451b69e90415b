/**
 * Kernels tfjs-backend-wasm lacks but training needs. UnsortedSegmentSum is the gradient of
 * gather (token embeddings, the loss's target pick); without it backprop fails on wasm.
 * Computed in JavaScript on the tensor's data: simple, exact, and cheap next to the matmuls.
 */
import { tf } from "../backend.js";

interface WasmBackendLike {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
}

function unsortedSegmentSum({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
  const wasm = backend as WasmBackendLike;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const rowShape = x.shape.slice(segmentIds.shape.length);
  const inner = rowShape.reduce((a, b) => a * b, 1);
  const values = wasm.readSync(x.dataId);
  const ids = wasm.readSync(segmentIds.dataId);
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= numSegments) continue; // out-of-range ids are dropped, as in TensorFlow
    const src = i * inner;
    const dst = id * inner;
    for (let k = 0; k < inner; k++) out[dst + k]! += values[src + k]!;
  }
  return wasm.makeOutput([numSegments, ...rowShape], x.dtype, undefined, out);
}

let registered = false;

export function registerMissingWasmKernels(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc });
  }
}
