/** N-gram counting shared by BLEU and chrF. */
import { codePoints, pySplit } from "./pycompat.js";

/** Counts of the n-grams of one order, keyed by their items joined with a space. */
export type NgramCounts = Map<string, number>;

/** Word n-grams of order n. Tokens never contain whitespace, so the space-joined key is unambiguous. */
export function wordNgrams(tokens: readonly string[], n: number): NgramCounts {
  const counts: NgramCounts = new Map();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join(" ");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Word n-grams of orders 1..maxOrder of a tokenized line (index n-1 holds order n), and its token count. */
export function allWordNgrams(line: string, maxOrder: number): { ngrams: NgramCounts[]; length: number } {
  const tokens = pySplit(line);
  const ngrams: NgramCounts[] = [];
  for (let n = 1; n <= maxOrder; n++) ngrams.push(wordNgrams(tokens, n));
  return { ngrams, length: tokens.length };
}

/**
 * Character n-grams of orders 1..maxOrder (index n-1 holds order n), over code points.
 * Whitespace is removed first unless `includeWhitespace`, as in chrF's default.
 */
export function allCharNgrams(line: string, maxOrder: number, includeWhitespace: boolean): NgramCounts[] {
  const chars = codePoints(includeWhitespace ? line : pySplit(line).join(""));
  const result: NgramCounts[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const counts: NgramCounts = new Map();
    for (let i = 0; i + n <= chars.length; i++) {
      const key = chars.slice(i, i + n).join("");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    result.push(counts);
  }
  return result;
}

/** Sum of min(hyp count, ref count) over the hypothesis n-grams: the clipped matches. */
export function clippedMatches(hyp: NgramCounts, ref: NgramCounts): number {
  let matches = 0;
  for (const [ngram, count] of hyp) {
    const refCount = ref.get(ngram);
    if (refCount !== undefined) matches += Math.min(count, refCount);
  }
  return matches;
}

export function totalCount(counts: NgramCounts): number {
  let total = 0;
  for (const count of counts.values()) total += count;
  return total;
}
