/**
 * Choosing the next token from logits, in transformers' order: temperature, then top-k, then
 * top-p (nucleus), then a draw from the remaining distribution. Temperature 0 means greedy.
 */
import type { Random } from "../core/random.js";

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = off). */
  topP?: number;
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

export function sampleToken(logits: ArrayLike<number>, options: SamplingOptions, random: Random): number {
  const temperature = options.temperature ?? 0;
  if (temperature === 0) return argmax(logits);
  const scaled = Array.from(logits, (l) => l / temperature);
  let candidates = scaled.map((_, i) => i).sort((a, b) => scaled[b]! - scaled[a]!); // most likely first
  const topK = options.topK ?? 0;
  if (topK > 0 && topK < candidates.length) {
    const threshold = scaled[candidates[topK - 1]!]!; // ties with the k-th logit are kept, as transformers does
    candidates = candidates.filter((i) => scaled[i]! >= threshold);
  }
  const max = scaled[candidates[0]!]!;
  let weights = candidates.map((i) => Math.exp(scaled[i]! - max));
  const topP = options.topP ?? 1;
  if (topP < 1) {
    const total = weights.reduce((a, b) => a + b, 0);
    let cumulative = 0;
    let keep = 0;
    while (keep < weights.length && cumulative < topP * total) cumulative += weights[keep++]!;
    candidates = candidates.slice(0, Math.max(keep, 1));
    weights = weights.slice(0, candidates.length);
  }
  const total = weights.reduce((a, b) => a + b, 0);
  let u = random.next() * total;
  for (let i = 0; i < candidates.length; i++) {
    u -= weights[i]!;
    if (u < 0) return candidates[i]!;
  }
  return candidates[candidates.length - 1]!;
}
