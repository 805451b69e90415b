/**
 * What the trainer and its data-parallel workers say to each other, and how named tensors travel between
 * them: packed into a SharedArrayBuffer at fixed offsets (a layout), which both sides read and write without
 * copying through messages.
 */
import { copyFloats, tensorOfFloats, tf } from "../backend/index.js";
import type { AdamWOptions } from "./optimizer.js";
import type { ReplicaRecipe } from "./replica.js";
import type { Share, UpdateSettings } from "./step.js";

/** Where each named tensor lies in a shared buffer of float32s. */
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

/** Copies `tensors` (in layout order) into `target`. */
export function writeTensors(tensors: Iterable<readonly [string, tf.Tensor]>, layout: Layout, target: Float32Array): void {
  let i = 0;
  for (const [, t] of tensors) copyFloats(t, target, layout[i++]!.offset);
}

/** Tensors holding copies of the layout's entries of `source`. */
export function readTensors(layout: Layout, source: Float32Array): Map<string, tf.Tensor> {
  return new Map(layout.map(({ name, shape, offset }) => [name, tensorOfFloats(source.subarray(offset, offset + sizeOf(shape)), shape)]));
}

/** Named tensors in shared memory. */
export interface SharedTensors {
  buffer: SharedArrayBuffer;
  layout: Layout;
}

export function shareTensors(tensors: [string, tf.Tensor][]): SharedTensors {
  const { layout, floats } = layoutOf(tensors);
  const buffer = new SharedArrayBuffer(4 * floats);
  writeTensors(tensors, layout, new Float32Array(buffer));
  return { buffer, layout };
}

export interface ReplicaSetup {
  backend: string;
  recipe: ReplicaRecipe;
  /** The trainer's model structure (see fingerprint in replica.ts): the replica refuses to start unless it builds the same. */
  fingerprint: string[];
  optimizer: Required<AdamWOptions>;
  noDecay: string[];
  /** Slot 0: the summed gradients; slot `rank`: this replica's own (each a whole gradient layout). */
  gradients: { buffer: SharedArrayBuffer; layout: Layout; floats: number };
  rank: number;
}

export type ToReplica =
  | { type: "setup"; setup: ReplicaSetup }
  /** Parameters (or optimizer moments with `step`) to copy in; answered with "loaded". */
  | { type: "weights"; tensors: SharedTensors }
  | { type: "moments"; tensors: SharedTensors; step: number }
  | { type: "step"; share: Share }
  /** The summed gradients are in slot 0: apply the update. */
  | { type: "update"; settings: UpdateSettings }
  | { type: "memory" };

export type FromReplica =
  | { type: "ready" }
  | { type: "refused"; reason: string }
  | { type: "loaded" }
  /** The replica's gradients are in its slot. */
  | { type: "gradients"; nllSum: number }
  | { type: "updated"; gradNorm: number; refused?: string }
  | { type: "memory"; numTensors: number; numBytes: number }
  | { type: "error"; message: string; user: boolean; diverged: boolean; stack?: string };
