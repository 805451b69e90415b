/** Simpler agreement metrics: whole-string exact match and position-wise token accuracy. */
import { pySplit } from "./pycompat.js";

export interface ExactMatchOptions {
  /** Compare case-insensitively. Default false. */
  lowercase?: boolean;
  /** Collapse whitespace runs and trim both sides before comparing. Default true. */
  normalizeWhitespace?: boolean;
}

/**
 * Fraction (0–1) of hypotheses equal to their reference, or to any of them when
 * `refs[i]` is an array. Throws when the lengths differ or there are no hypotheses.
 */
export function exactMatch(
  hyps: readonly string[],
  refs: readonly (string | readonly string[])[],
  options: ExactMatchOptions = {},
): number {
  if (hyps.length !== refs.length) throw new Error(`${hyps.length} hypotheses but ${refs.length} references`);
  if (hyps.length === 0) throw new Error("no hypotheses given");
  const normalize = (s: string) => {
    const spaced = (options.normalizeWhitespace ?? true) ? pySplit(s).join(" ") : s;
    return options.lowercase ? spaced.toLowerCase() : spaced;
  };
  let matches = 0;
  hyps.forEach((hyp, i) => {
    const ref = refs[i]!;
    const candidates = typeof ref === "string" ? [ref] : ref;
    const h = normalize(hyp);
    if (candidates.some((r) => normalize(r) === h)) matches++;
  });
  return matches / hyps.length;
}

export interface TokenAccuracy {
  correct: number;
  /** Positions counted: those whose target is not the ignored value. */
  total: number;
  /** correct / total, 0 when nothing was counted. */
  accuracy: number;
}

/**
 * Position-wise accuracy of predicted token ids against target ids, e.g. a language
 * model's argmax against the next tokens. Positions whose target equals `ignore`
 * (default -100, the usual padding label) are skipped. Both sequences must have one
 * length.
 */
export function tokenAccuracy<T extends number | string>(
  predicted: ArrayLike<T>,
  target: ArrayLike<T>,
  ignore: T | number = -100,
): TokenAccuracy {
  if (predicted.length !== target.length) {
    throw new Error(`${predicted.length} predictions but ${target.length} targets`);
  }
  let correct = 0;
  let total = 0;
  for (let i = 0; i < target.length; i++) {
    if (target[i] === ignore) continue;
    total++;
    if (predicted[i] === target[i]) correct++;
  }
  return { correct, total, accuracy: total === 0 ? 0 : correct / total };
}
