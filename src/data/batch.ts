/** Turning token sequences into a right-padded batch with attention mask and labels. */
import { tf } from "../backend/index.js";
import { IGNORE_INDEX } from "../models/loss.js";

export interface Example {
  inputIds: number[];
  /** Per-token labels (IGNORE_INDEX for unscored tokens, e.g. a prompt); default: the ids themselves. */
  labels?: number[];
  /** Where it came from ("data.jsonl:3"), for messages that name a row. */
  source?: string;
}

export interface Batch {
  inputIds: tf.Tensor2D; // [B, T] int32
  attentionMask: tf.Tensor2D; // [B, T] 1 = token, 0 = padding
  labels: tf.Tensor2D; // [B, T] int32, IGNORE_INDEX on padding
}

/** Pads on the right to the longest example; padding gets `padId` as input and IGNORE_INDEX as label. */
export function collate(examples: Example[], padId = 0): Batch {
  const width = Math.max(...examples.map((e) => e.inputIds.length));
  const ids = new Int32Array(examples.length * width).fill(padId);
  const mask = new Int32Array(examples.length * width);
  const labels = new Int32Array(examples.length * width).fill(IGNORE_INDEX);
  examples.forEach((e, row) => {
    const base = row * width;
    e.inputIds.forEach((id, t) => {
      ids[base + t] = id;
      mask[base + t] = 1;
      labels[base + t] = e.labels ? e.labels[t]! : id;
    });
  });
  const shape: [number, number] = [examples.length, width];
  return {
    inputIds: tf.tensor2d(ids, shape, "int32"),
    attentionMask: tf.tensor2d(mask, shape, "int32"),
    labels: tf.tensor2d(labels, shape, "int32"),
  };
}

export function disposeBatch(b: Batch): void {
  tf.dispose([b.inputIds, b.attentionMask, b.labels]);
}
