/**
 * Where one training step spends its time, per kernel (tf.profile times every kernel the engine runs):
 * forward + backward and the optimizer are profiled separately, and kernels are grouped into
 * 2-D matmuls, batched (attention) matmuls, copies, and the rest (elementwise and reductions).
 */
import { tf } from "../backend/index.js";
import type { WasmBackend } from "../backend/wasm-heap.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { tokenNll } from "../models/loss.js";
import { AdamW, clipGradNorm } from "../train/optimizer.js";
import type { Trainable } from "../train/trainable.js";

export type Category = "matmul" | "attention" | "copies" | "elementwise" | "optimizer";

export interface StepProfile {
  /** Wall seconds per category (kernel time; JavaScript between kernels is in `overhead`). */
  seconds: Record<Category | "overhead", number>;
  /** The same as fractions of the step. */
  share: Record<Category | "overhead", number>;
  /** tfjs's high-water mark of tensor bytes during forward + backward (it counts data shared by several tensors once per tensor). */
  peak_tensor_bytes: number;
  /** wasm only: the high-water mark of heap memory allocated during the step (activations, gradients, scratch), and the heap's size. */
  peak_step_heap_bytes?: number;
  wasm_memory_bytes?: number;
  /** The kernels that took longest, summed over calls with the same name and input shapes. */
  top: { kernel: string; calls: number; seconds: number }[];
}

const MATMULS = new Set(["BatchMatMul", "_FusedMatMul"]);
const COPIES = new Set([
  "Identity",
  "Transpose",
  "Slice",
  "StridedSlice",
  "Concat",
  "SplitV",
  "Pack",
  "Unpack",
  "Tile",
  "BroadcastTo",
  "PadV2",
  "Cast",
  "GatherV2",
  "Reshape",
]);

function categoryOf(kernel: { name: string; inputShapes: number[][] }): Category {
  if (MATMULS.has(kernel.name)) {
    const batched = kernel.inputShapes.every((s) => s.slice(0, -2).reduce((a, b) => a * b, 1) > 1);
    return batched ? "attention" : "matmul";
  }
  return COPIES.has(kernel.name) ? "copies" : "elementwise";
}

type Kernels = Awaited<ReturnType<typeof tf.profile>>["kernels"];

async function kernelSeconds(kernels: Kernels): Promise<{ kernel: string; category: Category; seconds: number }[]> {
  // Custom-gradient ops (e.g. logSoftmax) are recorded too, around kernels that are recorded themselves.
  const backend = tf.getBackend();
  return Promise.all(
    kernels
      .filter((k) => tf.getKernel(k.name, backend) !== undefined)
      .map(async (k) => ({
        kernel: `${k.name} ${k.inputShapes.map((s) => `[${s.join(",")}]`).join(" ")}`,
        category: categoryOf(k),
        seconds: Number(await k.kernelTimeMs) / 1000,
      })),
  );
}

/** Follows the wasm heap's allocations from JavaScript (tensors and kernel scratch; not XNNPACK's own). */
function trackHeap(): { peak: () => number; stop: () => void } | undefined {
  if (tf.getBackend() !== "wasm") return undefined;
  const wasm = (tf.backend() as unknown as WasmBackend).wasm;
  const [malloc, free] = [wasm._malloc, wasm._free];
  const sizes = new Map<number, number>();
  let [live, peak] = [0, 0];
  wasm._malloc = (bytes: number) => {
    const offset = malloc(bytes);
    sizes.set(offset >>> 0, bytes);
    live += bytes;
    peak = Math.max(peak, live);
    return offset;
  };
  wasm._free = (offset: number) => {
    live -= sizes.get(offset >>> 0) ?? 0; // memory from before the step is not counted
    sizes.delete(offset >>> 0);
    free(offset);
  };
  return {
    peak: () => peak,
    stop: () => Object.assign(wasm, { _malloc: malloc, _free: free }),
  };
}

/** Profiles one optimizer step of `trainable` on `examples` (one micro-batch, AdamW, clipping at 1.0). */
export async function profileStep(trainable: Trainable, examples: Example[]): Promise<StepProfile> {
  const params = trainable.trainableParameters();
  const vars = params.map(([, p]) => p);
  const nameOf = new Map(params.map(([name, p]) => [p.name, name]));
  const batch = collate(examples);
  const optimizer = new AdamW();
  const grads = new Map<string, tf.Tensor>();
  trainable.setTraining(true);
  const heap = trackHeap();
  const started = performance.now();
  const backward = await tf.profile(() => {
    const { value, grads: g } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const logits = trainable.model.forward(batch.inputIds, { attentionMask: batch.attentionMask });
          const { nll, mask } = tokenNll(logits, batch.labels);
          return nll.sum().div(mask.sum()) as tf.Scalar;
        }),
      vars,
    );
    value.dispose();
    for (const [varName, grad] of Object.entries(g)) grads.set(nameOf.get(varName)!, grad);
    return [];
  });
  // tf.profile reuses one result object: read this one before profiling again.
  const backwardKernels = await kernelSeconds(backward.kernels);
  const peakBytes = backward.peakBytes;
  const optimizerProfile = await tf.profile(() => {
    clipGradNorm(grads, 1);
    optimizer.apply(params, grads, 1e-4);
    return [];
  });
  const wall = (performance.now() - started) / 1000;
  heap?.stop();
  trainable.setTraining(false);
  tf.dispose([...grads.values()]);
  optimizer.dispose();
  disposeBatch(batch);

  const optimizerKernels = (await kernelSeconds(optimizerProfile.kernels)).map((k) => ({ ...k, category: "optimizer" as const }));
  const timed = [...backwardKernels, ...optimizerKernels];
  const seconds = { matmul: 0, attention: 0, copies: 0, elementwise: 0, optimizer: 0, overhead: wall };
  const byKernel = new Map<string, { kernel: string; calls: number; seconds: number }>();
  for (const k of timed) {
    seconds[k.category] += k.seconds;
    seconds.overhead -= k.seconds;
    const entry = byKernel.get(k.kernel) ?? { kernel: k.kernel, calls: 0, seconds: 0 };
    entry.calls += 1;
    entry.seconds += k.seconds;
    byKernel.set(k.kernel, entry);
  }
  const top = [...byKernel.values()].sort((a, b) => b.seconds - a.seconds).slice(0, 15);
  const share = Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, v / wall])) as StepProfile["share"];
  const memory = heap
    ? { peak_step_heap_bytes: heap.peak(), wasm_memory_bytes: (tf.backend() as unknown as WasmBackend).wasm.HEAPU8.byteLength }
    : {};
  return { seconds, share, peak_tensor_bytes: peakBytes, ...memory, top };
}
