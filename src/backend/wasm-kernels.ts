/**
 * What tfjs-backend-wasm lacks for training. Kernels it lacks: UnsortedSegmentSum is the gradient of
 * gather (token embeddings, the loss's target pick); without it backprop fails on wasm.
 * Computed in JavaScript on the tensor's data: simple, exact, and cheap next to the matmuls.
 */
import * as tf from "@tensorflow/tfjs";

interface WasmBackendLike {
  readSync(dataId: unknown): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
}

function unsortedSegmentSum({
  inputs,
  attrs,
  backend,
}: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}): tf.TensorInfo {
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
  registerFastMatMulGradient();
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({
      kernelName: "UnsortedSegmentSum",
      backendName: "wasm",
      kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
    });
  }
}

/**
 * tfjs's matMul gradient uses transposeA/transposeB, which on wasm leave the fast kernel (measured
 * ≈12× slower for a 512×256×688 product). For 2-D products we transpose explicitly instead; batched
 * products keep tfjs's own gradient (there the flags are the fast path).
 */
function registerFastMatMulGradient(): void {
  const original = tf.getGradient("BatchMatMul");
  if (!original) return;
  const mm = (x: tf.Tensor, y: tf.Tensor, transposeX: boolean, transposeY: boolean) =>
    tf.matMul(transposeX ? x.transpose() : x, transposeY ? y.transpose() : y);
  tf.registerGradient({
    ...original,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      if (a.rank !== 2 || b.rank !== 2) return original.gradFunc(dy, saved, attrs);
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return { a: () => mm(g, b, false, true), b: () => mm(a, g, true, false) };
      if (!transposeA && transposeB) return { a: () => mm(g, b, false, false), b: () => mm(g, a, true, false) };
      if (transposeA && !transposeB) return { a: () => mm(b, g, false, true), b: () => mm(a, g, false, false) };
      return { a: () => mm(b, g, true, true), b: () => mm(g, a, true, true) };
    },
  });
}
