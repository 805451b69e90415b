/**
 * The gradients of one optimizer step, as every replica computes them, in the trainer's thread or in a
 * data-parallel worker (replica-worker.ts): the same code on the same rows gives the same numbers. A step's
 * micro-batches are split into contiguous parts of rows, one per replica; each part's loss is its summed token
 * NLL over the whole step's counted tokens, so the parts' gradients add up to the one-replica gradient.
 */
import { tf } from "../backend/index.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { perplexity } from "../metrics/perplexity.js";
import type { CausalLM } from "../models/causal-lm.js";
import { tokenNll } from "../models/loss.js";
import { ActivationCheckpointing } from "../nn/checkpointing.js";
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

/** What a replica computes of a step: parts of micro-batches, and the step's counted tokens (at least 1; the loss is the NLL over them). */
export interface Share {
  parts: MicroBatchPart[];
  total: number;
}

/** Rows [start, end) of part `r` of `length` rows split into `parts` contiguous parts (sizes differ by at most 1). */
export function contiguousPart(length: number, r: number, parts: number): [start: number, end: number] {
  return [Math.floor((r * length) / parts), Math.floor(((r + 1) * length) / parts)];
}

/**
 * Splits a step's micro-batches among `replicas`: each micro-batch into contiguous parts, one per replica, when it
 * has a row for each; otherwise whole micro-batches go round-robin. A share may be empty.
 */
export function splitStep(microBatches: Example[][], seeds: number[], total: number, replicas: number): Share[] {
  const shares: Share[] = Array.from({ length: replicas }, () => ({ parts: [], total }));
  microBatches.forEach((rows, m) => {
    if (rows.length < replicas) {
      shares[m % replicas]!.parts.push({ examples: rows, firstRow: 0, seed: seeds[m]! });
      return;
    }
    for (let r = 0; r < replicas; r++) {
      const [start, end] = contiguousPart(rows.length, r, replicas);
      shares[r]!.parts.push({ examples: rows.slice(start, end), firstRow: start, seed: seeds[m]! });
    }
  });
  return shares;
}

/**
 * Gradients of the share's summed token NLL / share.total for each trainable parameter (by parameter name; zeros
 * when the share has no counted token), and that NLL sum.
 */
export function shareGradients(
  trainable: Trainable,
  share: Share,
  options: { gradientCheckpointing: boolean },
): { grads: Map<string, tf.Tensor>; nllSum: number } {
  const params = trainable.trainableParameters();
  const vars = params.map(([, p]) => p);
  const byVarName = new Map(params.map(([name, p]) => [p.name, name]));
  const grads = new Map<string, tf.Tensor>();
  let nllSum = 0;
  for (const { examples, firstRow, seed } of share.parts) {
    // A part without counted tokens adds nothing (and one-token rows would leave no position to predict).
    if (examples.every((e) => countedTokens(e) === 0)) continue;
    const batch = collate(examples);
    const checkpointing = options.gradientCheckpointing ? new ActivationCheckpointing(trainable.randomStreams) : undefined;
    trainable.setTraining(true, { seed, firstRow, count: examples.length });
    let computed: { value: tf.Scalar; grads: tf.NamedTensorMap };
    try {
      computed = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const logits = trainable.model.forward(batch.inputIds, { attentionMask: batch.attentionMask, checkpointing });
            return tokenNll(logits, batch.labels).nll.sum().div(share.total) as tf.Scalar;
          }),
        vars,
      );
    } finally {
      trainable.setTraining(false);
      checkpointing?.dispose();
      disposeBatch(batch);
    }
    const { value, grads: g } = computed;
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
  for (const [name, p] of params) if (!grads.has(name)) grads.set(name, tf.zerosLike(p));
  return { grads, nllSum };
}

/** Summed token NLL and the tokens it scores. */
export interface NllSum {
  nllSum: number;
  tokens: number;
}

/** The evaluation loss of a replica's share of the rows, as sums that add up across replicas (rows without a scored token add nothing). */
export function shareNll(model: CausalLM, examples: Example[], batchSize: number): NllSum {
  const scored = examples.filter((e) => countedTokens(e) > 0);
  if (scored.length === 0) return { nllSum: 0, tokens: 0 };
  const { loss, tokens } = perplexity(model, scored, { batchSize });
  return { nllSum: loss * tokens, tokens };
}
