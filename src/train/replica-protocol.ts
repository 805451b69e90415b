/**
 * What the trainer and its data-parallel workers say to each other, and how named tensors travel between them:
 * packed into SharedArrayBuffers at fixed offsets (a layout), which both sides read and write without copying
 * through messages.
 */
import { copyFloats, tensorOfFloats, tf } from "../backend/index.js";
import type { ReplicaRecipe } from "./replica.js";
import type { Example } from "../data/batch.js";
import type { GenerationRequest, SamplingChoice } from "../metrics/generation-eval.js";
import type { WindowScores } from "../metrics/perplexity.js";
import type { NllSum, Share } from "./step.js";

/** Where each named tensor lies in a buffer of float32s. */
export type Layout = { name: string; shape: number[]; offset: number }[];

export function layoutOf(tensors: Iterable<readonly [string, tf.Tensor]>): { layout: Layout; floats: number } {
  const layout: Layout = [];
  let floats = 0;
  for (const [name, t] of tensors) {
    layout.push({ name, shape: t.shape, offset: floats });
    floats += t.size;
  }
  return { layout, floats };
}

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Copies the layout's tensors, looked up by name in `tensors`, into `target`. */
export function writeTensors(tensors: ReadonlyMap<string, tf.Tensor>, layout: Layout, target: Float32Array): void {
  for (const { name, offset } of layout) copyFloats(tensors.get(name)!, target, offset);
}

/** A tensor holding a copy of the layout entry's floats in `source`. */
export function readTensor({ shape, offset }: Layout[number], source: Float32Array): tf.Tensor {
  return tensorOfFloats(source.subarray(offset, offset + sizeOf(shape)), shape);
}

/** Named float32s in shared memory. */
export interface SharedTensors {
  buffer: SharedArrayBuffer;
  layout: Layout;
  floats: number;
}

/** A shared buffer laid out for `tensors` (filled with their values unless `fill` is false). */
export function shareTensors(tensors: [string, tf.Tensor][], fill = true): SharedTensors {
  const { layout, floats } = layoutOf(tensors);
  const buffer = new SharedArrayBuffer(4 * floats);
  if (fill) writeTensors(new Map(tensors), layout, new Float32Array(buffer));
  return { buffer, layout, floats };
}

/** What a replica of a trained model shares with the trainer besides its weights. */
export interface TrainingSetup {
  /** The trainable parameters, as the trainer writes them after each update. */
  trainable: SharedTensors;
  /** One gradient layout (the trainable one) per replica, rank after rank. */
  gradients: SharedArrayBuffer;
  gradientCheckpointing: boolean;
}

export interface ReplicaSetup {
  backend: string;
  /** What the starting thread multiplies on (LORALAB_BLAS's value for it): every thread must multiply alike. */
  blas: string;
  /** Whether the starting thread runs the SIMD kernels (simd-kernels.ts): a replica that does otherwise refuses. */
  simd: boolean;
  recipe: ReplicaRecipe;
  /** The original's structure (see fingerprint in replica.ts): the replica refuses to start unless it builds the same. */
  fingerprint: string[];
  /** Every parameter of the original (names as its parameter root says them), copied in once. */
  parameters: SharedTensors;
  rank: number;
  /** Absent for a replica that only evaluates. */
  training?: TrainingSetup;
}

export type ToReplica =
  | { type: "setup"; setup: ReplicaSetup }
  /** Compute the share's gradients into this replica's slot. */
  | { type: "step"; share: Share }
  /** The trainable weights in the shared buffer changed: copy them in. */
  | { type: "weights" }
  /** Score rows of the evaluation data (no dropout, no gradients). */
  | { type: "score"; examples: Example[]; batchSize: number }
  /** Perplexity windows, batch by batch (metrics/perplexity.ts scoreWindows). */
  | { type: "scoreWindows"; batches: Example[][] }
  | { type: "generate"; requests: GenerationRequest[]; sampling: SamplingChoice }
  | { type: "memory" };

export type FromReplica =
  | { type: "ready" }
  | { type: "refused"; reason: string }
  /** The replica's gradients are in its slot. */
  | { type: "gradients"; nllSum: number }
  | { type: "loaded" }
  | ({ type: "scored" } & NllSum)
  | ({ type: "windowScores" } & WindowScores)
  | { type: "generated"; ids: number[][] }
  | { type: "memory"; numTensors: number; numBytes: number }
  | { type: "error"; message: string; user: boolean; stack?: string };
