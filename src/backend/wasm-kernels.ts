/**
 * What tfjs-backend-wasm lacks or does slowly for training:
 * - UnsortedSegmentSum, the gradient of gather (token embeddings, the loss's target pick): without it
 *   backprop fails on wasm. Computed in JavaScript on the tensor's data: exact, and cheap next to the matmuls.
 * - BatchMatMul on the fast path for batched and transposed products (wasm-matmul.ts).
 * - Identity without a copy.
 */
import * as tf from "@tensorflow/tfjs";
import { fastBatchMatMul } from "./wasm-matmul.js";
import type { WasmBackend } from "./wasm-heap.js";

function unsortedSegmentSum({
  inputs,
  attrs,
  backend,
}: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}): tf.TensorInfo {
  const wasm = backend as WasmBackend;
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

/**
 * Identity without a copy: the output shares the input's data (tfjs tensors are immutable), as on the
 * cpu backend. The engine clones every tensor it saves for the backward pass through this kernel.
 */
function identity({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = inputs.x!;
  (backend as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let registered = false;

function replaceKernel(kernelName: string, kernelFunc: tf.KernelFunc): void {
  tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc });
}

export function registerMissingWasmKernels(): void {
  if (registered) return;
  registered = true;
  const stock = tf.getKernel("BatchMatMul", "wasm")!;
  replaceKernel("BatchMatMul", fastBatchMatMul(stock.kernelFunc));
  replaceKernel("Identity", identity as unknown as tf.KernelFunc);
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({
      kernelName: "UnsortedSegmentSum",
      backendName: "wasm",
      kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
    });
  }
}
