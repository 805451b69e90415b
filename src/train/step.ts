/**
 * One optimizer step as every replica computes it, in-process or in a data-parallel worker: the gradients of a
 * share of the step's rows, and the update (clipping, then AdamW) from the step's summed gradients. Replicas that
 * apply the same update to the same weights with the same arithmetic stay bit-identical.
 */
import { tf } from "../backend/index.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { tokenNll } from "../models/loss.js";
import type { AdamW } from "./optimizer.js";
import { clipGradNorm } from "./optimizer.js";
import { countedTokens } from "./training-data.js";
import type { Trainable } from "./trainable.js";

/** Rows of one micro-batch that one replica computes. */
export interface MicroBatchPart {
  examples: Example[];
  /** Index in the micro-batch of the first of these rows (dropout masks are keyed by it). */
  firstRow: number;
  /** The micro-batch's dropout seed (the same for all its parts). */
  seed: number;
}

/** What a replica computes of a step: parts of micro-batches, and the step's counted tokens (the loss is their mean). */
export interface Share {
  parts: MicroBatchPart[];
  total: number;
}

/**
 * Splits a step's micro-batches among `replicas`: each micro-batch into contiguous parts, one per replica, when it
 * has a row for each; otherwise whole micro-batches go round-robin. Every share may be empty.
 */
export function splitStep(microBatches: Example[][], seeds: number[], total: number, replicas: number): Share[] {
  const shares: Share[] = Array.from({ length: replicas }, () => ({ parts: [], total }));
  microBatches.forEach((rows, m) => {
    if (rows.length < replicas) {
      shares[m % replicas]!.parts.push({ examples: rows, firstRow: 0, seed: seeds[m]! });
      return;
    }
    for (let r = 0; r < replicas; r++) {
      const [start, end] = [Math.floor((r * rows.length) / replicas), Math.floor(((r + 1) * rows.length) / replicas)];
      shares[r]!.parts.push({ examples: rows.slice(start, end), firstRow: start, seed: seeds[m]! });
    }
  });
  return shares;
}

/** Gradients of this share's summed token NLL / share.total for each trainable parameter (zeros if it has none), and that NLL sum. */
export function shareGradients(trainable: Trainable, share: Share): { grads: Map<string, tf.Tensor>; nllSum: number } {
  const params = trainable.trainableParameters();
  const vars = params.map(([, p]) => p);
  const byVarName = new Map(params.map(([name, p]) => [p.name, name]));
  const grads = new Map<string, tf.Tensor>();
  let nllSum = 0;
  try {
    for (const { examples, firstRow, seed } of share.parts) {
      // A part without counted tokens adds nothing (and one-token rows would leave no position to predict).
      if (examples.every((e) => countedTokens(e) === 0)) continue;
      trainable.setTraining(true, { seed, firstRow });
      const batch = collate(examples);
      const { value, grads: g } = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const { nll } = tokenNll(trainable.model.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels);
            return nll.sum().div(share.total) as tf.Scalar;
          }),
        vars,
      );
      disposeBatch(batch);
      nllSum += value.dataSync()[0]! * share.total;
      value.dispose();
      for (const [varName, grad] of Object.entries(g)) {
        const name = byVarName.get(varName)!;
        const previous = grads.get(name);
        grads.set(name, previous ? tf.tidy(() => previous.add(grad)) : grad);
        if (previous) {
          previous.dispose();
          grad.dispose();
        }
      }
    }
  } finally {
    trainable.setTraining(false);
  }
  for (const [name, p] of params) if (!grads.has(name)) grads.set(name, tf.zerosLike(p));
  return { grads, nllSum };
}

export interface UpdateSettings {
  /** The step's mean token NLL (non-finite: the update is refused). */
  loss: number;
  lr: number;
  maxGradNorm: number;
  /** 1-based, for messages. */
  step: number;
}

/**
 * Clips `grads` (the step's summed gradients, disposed here) and applies AdamW to the trainable parameters.
 * Returns the norm before clipping, and why the update was refused if it was.
 */
export function applyUpdate(
  trainable: Trainable,
  optimizer: AdamW,
  grads: Map<string, tf.Tensor>,
  settings: UpdateSettings,
  noDecay: ReadonlySet<string>,
): { gradNorm: number; refused?: string } {
  const { loss, lr, step } = settings;
  try {
    const gradNorm = clipGradNorm(grads, settings.maxGradNorm);
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm))
      return {
        gradNorm,
        refused: `step ${step}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`}; the update was not applied`,
      };
    if (!optimizer.apply(trainable.trainableParameters(), grads, lr, noDecay))
      return { gradNorm, refused: `step ${step}: the update (lr ${lr}) would make weights non-finite; it was not applied` };
    return { gradNorm };
  } finally {
    tf.dispose([...grads.values()]);
  }
}
