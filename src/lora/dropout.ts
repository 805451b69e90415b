/**
 * LoRA dropout masks keyed by what they drop, not by when they are drawn: the mask of one row of a batch is a
 * function of a seed (one per micro-batch, drawn by the trainer), the layer, the adapter and the row's index in
 * the micro-batch. A micro-batch split across data-parallel replicas therefore gets exactly the masks it gets in
 * one process, whichever replica computes which rows, and a forward pass computed twice draws the same masks.
 * A row's values are drawn in its row-major order, so a row padded to another length keeps the masks of its tokens.
 */
import { mulByConstant, tf } from "../backend/index.js";
import { Random } from "../core/random.js";

/** What the trainer sets while it computes a micro-batch (or the rows from `firstRow` on of one). */
export interface DropoutRows {
  /** Drawn by the trainer from the trained adapter's random stream, one per micro-batch. */
  seed: number;
  /** Index in the micro-batch of the first row this forward pass computes. */
  firstRow: number;
  /** Rows this forward pass computes (an input of any layout, batch first, splits into this many equal rows). */
  count: number;
}

/** FNV-1a of a string, for mixing names into seeds. */
export function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Mixes `value` into the 32-bit hash `h` (a murmur3-style finaliser per step). */
function mix(h: number, value: number): number {
  h = Math.imul(h ^ value, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * Inverted dropout of x [rows.count, ...] at `rate`, as tf.dropout computes it (kept values scaled by 1 / (1 − rate)),
 * with each row's mask drawn from (rows.seed, key, rows.firstRow + row).
 */
export function rowDropout(x: tf.Tensor, rate: number, rows: DropoutRows, key: number): tf.Tensor {
  const count = rows.count;
  const perRow = x.size / count;
  const keep = 1 - rate;
  const mask = new Float32Array(x.size);
  for (let row = 0; row < count; row++) {
    const random = new Random(mix(mix(rows.seed, key), rows.firstRow + row));
    const offset = row * perRow;
    for (let i = 0; i < perRow; i++) mask[offset + i] = random.next() >= rate ? 1 / keep : 0;
  }
  return tf.tidy(() => mulByConstant(x, tf.tensor(mask, x.shape))); // keeps the mask, not x, for the backward pass
}
