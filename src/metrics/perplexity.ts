/**
 * Perplexity: exp of the token-weighted mean NLL over all scored tokens. Texts longer than the
 * model's context are scored with a sliding window (transformers' "Perplexity of fixed-length
 * models"): windows of `maxLength` tokens advance by `stride`, and each window scores only the
 * tokens the previous one did not, with the rest as context.
 */
import { tf } from "../backend/index.js";
import { check, invalid, validate } from "../core/check.js";
import { UserError } from "../core/errors.js";
import type { CausalLM } from "../models/causal-lm.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { IGNORE_INDEX, tokenNll } from "../models/loss.js";
import { ensureForwardFits } from "../models/memory-estimate.js";

export interface PerplexityScore {
  /** Mean NLL per scored token (nats). */
  loss: number;
  perplexity: number;
  /** Number of scored tokens. */
  tokens: number;
}

export interface PerplexityResult extends PerplexityScore {
  perExample: PerplexityScore[];
}

export interface PerplexityOptions {
  batchSize?: number;
  /** Window length; default: the model's max_position_embeddings. */
  maxLength?: number;
  /** How far each window advances; default: maxLength (no overlap). */
  stride?: number;
}

export interface Window extends Example {
  example: number;
}

function windows(examples: Example[], maxLength: number, stride: number): Window[] {
  const out: Window[] = [];
  examples.forEach((e, example) => {
    const labels = e.labels ?? e.inputIds;
    if (e.inputIds.length <= maxLength) {
      out.push({ inputIds: e.inputIds, labels, example });
      return;
    }
    let previousEnd = 0;
    for (let begin = 0; ; begin += stride) {
      const end = Math.min(begin + maxLength, e.inputIds.length);
      const scored = end - previousEnd; // tokens not scored by an earlier window
      const windowLabels = labels.slice(begin, end).map((id, i) => (i < end - begin - scored ? IGNORE_INDEX : id));
      out.push({ inputIds: e.inputIds.slice(begin, end), labels: windowLabels, example });
      previousEnd = end;
      if (end === e.inputIds.length) break;
    }
  });
  return out;
}

function score(nllSum: number, tokens: number): PerplexityScore {
  const loss = tokens > 0 ? nllSum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens };
}

/**
 * A loss that is NaN or ±Inf although every weight is finite (weights are checked when they are read): the
 * forward pass overflowed float32, as happens to a diverged fine-tune. The CLI exits with 3 for it, as for a
 * diverged `train`.
 */
export class NonFiniteLossError extends UserError {
  constructor(
    /** Index of the first example whose loss is not finite. */
    readonly example: number,
    readonly loss: number,
    where: string,
  ) {
    super(
      `the loss is ${loss} on ${where} although every weight is finite: the forward pass overflowed float32 (diverged or exploding weights?)`,
    );
  }
}

/** How messages name an example: its source ("data.jsonl:3") when it has one. */
const nameOf = (examples: Example[], i: number) => examples[i]?.source ?? `example ${i + 1}`;

/** A window must hold a token and one before it that predicts it. */
const windowLength = check<number>(
  "an integer ≥ 2 (a window scores each token from the ones before it)",
  (v) => Number.isInteger(v) && (v as number) >= 2,
);

/** The largest batch of windows must fit the backend before the first one runs (a huge context with long rows would not). */
function checkWindowsFit(model: CausalLM, all: Window[], batchSize: number): void {
  const seq = all.reduce((longest, w) => Math.max(longest, w.inputIds.length), 0);
  const batch = Math.min(batchSize, all.length);
  ensureForwardFits(model, { batch, seq }, `perplexity: a batch of ${batch} window${batch === 1 ? "" : "s"} of ${seq} tokens`, [
    "a smaller --batch (batchSize)",
    "shorter windows: --max-length (maxLength), with --stride (stride) for overlap",
  ]);
}

/** The windows a perplexity run scores, in the batches they run in (what one thread or every core computes alike). */
export interface PerplexityPlan {
  examples: Example[];
  batches: Window[][];
}

/** Checks the options and cuts `examples` into windows and the windows into batches, in order. */
export function planPerplexity(model: CausalLM, examples: Example[], options: PerplexityOptions = {}): PerplexityPlan {
  const batchSize = options.batchSize ?? 8;
  const maxLength = validate(options.maxLength ?? model.config.maxPositions, windowLength, "perplexity", "maxLength");
  const stride = options.stride ?? maxLength;
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= maxLength)) {
    throw invalid("perplexity", "stride", `an integer in 1…${maxLength} (the window length)`, stride);
  }
  const all = windows(examples, maxLength, stride);
  checkWindowsFit(model, all, batchSize);
  const batches: Window[][] = [];
  for (let i = 0; i < all.length; i += batchSize) batches.push(all.slice(i, i + batchSize));
  return { examples, batches };
}

/** Per window, in the order of the batches: its summed NLL and its scored tokens. */
export interface WindowScores {
  nll: Float64Array;
  tokens: Float64Array;
}

/**
 * Scores each batch as one forward pass. A window's numbers depend only on its batch, so any thread that runs the
 * same batches gets the same bits (eval-threads.ts splits the batches, never a batch).
 */
export function scoreWindows(model: CausalLM, batches: Example[][]): WindowScores {
  const count = batches.reduce((n, b) => n + b.length, 0);
  const scores = { nll: new Float64Array(count), tokens: new Float64Array(count) };
  let w = 0;
  for (const group of batches) {
    const batch = collate(group);
    const { nll, mask } = tf.tidy(() => tokenNll(model.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels));
    const nllData = nll.dataSync();
    const maskData = mask.dataSync();
    tf.dispose([nll, mask]);
    disposeBatch(batch);
    const width = nll.shape[1];
    group.forEach((_, row) => {
      for (let t = 0; t < width; t++) {
        scores.nll[w]! += nllData[row * width + t]!;
        scores.tokens[w]! += maskData[row * width + t]!;
      }
      w++;
    });
  }
  return scores;
}

/** The perplexity of each example and of all, from its windows' scores (windows in the plan's order). */
export function perplexityResult({ examples, batches }: PerplexityPlan, scores: WindowScores): PerplexityResult {
  const sums = new Float64Array(examples.length);
  const counts = new Float64Array(examples.length);
  batches.flat().forEach((w, i) => {
    sums[w.example]! += scores.nll[i]!;
    counts[w.example]! += scores.tokens[i]!;
  });
  const total = score(
    sums.reduce((a, b) => a + b, 0),
    counts.reduce((a, b) => a + b, 0),
  );
  if (total.tokens === 0) {
    const rows = examples.length === 1 ? nameOf(examples, 0) : `${nameOf(examples, 0)} … ${nameOf(examples, examples.length - 1)}`;
    throw new UserError(
      `perplexity: no token to score in ${rows}: every row has a single token or no scored label (a row of n tokens scores n − 1, each predicted from the ones before it)`,
    );
  }
  if (!Number.isFinite(total.loss)) {
    const first = sums.findIndex((s) => !Number.isFinite(s));
    throw new NonFiniteLossError(first, sums[first]!, nameOf(examples, first));
  }
  return { ...total, perExample: [...sums].map((s, i) => score(s, counts[i]!)) };
}

/** Perplexity in this thread (eval-threads.ts computes the same on every core). */
export function perplexity(model: CausalLM, examples: Example[], options: PerplexityOptions = {}): PerplexityResult {
  const plan = planPerplexity(model, examples, options);
  return perplexityResult(plan, scoreWindows(model, plan.batches));
}
