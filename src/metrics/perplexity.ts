/**
 * Perplexity: exp of the token-weighted mean NLL over all scored tokens. Texts longer than the
 * model's context are scored with a sliding window (transformers' "Perplexity of fixed-length
 * models"): windows of `maxLength` tokens advance by `stride`, and each window scores only the
 * tokens the previous one did not, with the rest as context.
 */
import { tf } from "../backend/index.js";
import type { CausalLM } from "../models/causal-lm.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { IGNORE_INDEX, tokenNll } from "../models/loss.js";

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

interface Window extends Example {
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

export function perplexity(model: CausalLM, examples: Example[], options: PerplexityOptions = {}): PerplexityResult {
  const batchSize = options.batchSize ?? 8;
  const maxLength = options.maxLength ?? model.config.maxPositions;
  const stride = options.stride ?? maxLength;
  if (stride < 1 || stride > maxLength) throw new RangeError(`stride must be between 1 and maxLength (${maxLength})`);
  const sums = new Float64Array(examples.length);
  const counts = new Float64Array(examples.length);
  const all = windows(examples, maxLength, stride);
  for (let i = 0; i < all.length; i += batchSize) {
    const group = all.slice(i, i + batchSize);
    const batch = collate(group);
    const { nll, mask } = tf.tidy(() => tokenNll(model.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels));
    const nllData = nll.dataSync();
    const maskData = mask.dataSync();
    tf.dispose([nll, mask]);
    disposeBatch(batch);
    const width = nll.shape[1];
    group.forEach((w, row) => {
      for (let t = 0; t < width; t++) {
        sums[w.example]! += nllData[row * width + t]!;
        counts[w.example]! += maskData[row * width + t]!;
      }
    });
  }
  const total = score(
    sums.reduce((a, b) => a + b, 0),
    counts.reduce((a, b) => a + b, 0),
  );
  return { ...total, perExample: [...sums].map((s, i) => score(s, counts[i]!)) };
}
