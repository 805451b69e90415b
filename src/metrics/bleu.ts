/**
 * BLEU (Papineni et al., 2002) exactly as sacrebleu 2.x computes, prints and signs it:
 * `corpusBleu` is `sacrebleu.corpus_bleu` / `BLEU().corpus_score`, `sentenceBleu` is
 * `sacrebleu.sentence_bleu` (effective order on by default).
 */
import { exp, log } from "./libm.js";
import { allWordNgrams, clippedMatches, type NgramCounts } from "./ngrams.js";
import { pyFixed, pyRstrip, pySum } from "./pycompat.js";
import { formatSignature, referencesBySegment, type RefCount, type ReferenceStreams, type SegmentReferences } from "./references.js";
import { getTokenizer, isTokenizerName, TOKENIZERS, type TokenizerName } from "./tokenizers.js";

export type SmoothMethod = "exp" | "floor" | "add-k" | "none";
export const SMOOTH_METHODS: readonly SmoothMethod[] = ["exp", "floor", "add-k", "none"];

/**
 * Smoothing (Chen & Cherry, 2014): `none`; `floor` (method 1) gives zero-match orders
 * value/total; `add-k` (method 2) adds k to matches and totals of orders ≥ 2; `exp`
 * (method 3, mteval-v13a's) gives the k-th zero-match order 1/(2^k·total).
 * `floor` and `add-k` take a value, these are the defaults.
 */
export const SMOOTH_DEFAULTS: Readonly<Record<SmoothMethod, number | null>> = {
  exp: null,
  floor: 0.1,
  "add-k": 1,
  none: null,
};

export const MAX_NGRAM_ORDER = 4;

export interface BleuOptions {
  /** Default "13a". */
  tokenize?: TokenizerName;
  /** Default "exp". */
  smoothMethod?: SmoothMethod;
  /** For `floor` and `add-k`; null/undefined takes SMOOTH_DEFAULTS. */
  smoothValue?: number | null;
  /** Default false. */
  lowercase?: boolean;
  /** Average only the orders up to the highest one the hypothesis has. Default: off for corpusBleu, on for sentenceBleu. */
  effectiveOrder?: boolean;
  /** Default 4. */
  maxNgramOrder?: number;
}

/** BLEU's sufficient statistics; corpus statistics are the sums over segments. */
export interface BleuStats {
  sysLen: number;
  refLen: number;
  /** Clipped n-gram matches per order (index n-1 for order n). */
  correct: number[];
  /** Hypothesis n-grams per order. */
  total: number[];
}

export interface BleuScore {
  /** 0–100. */
  score: number;
  /** Matches and totals per order as sacrebleu reports them (add-k has added k to orders ≥ 2). */
  counts: number[];
  totals: number[];
  /** Per order, 0–100, smoothed. */
  precisions: number[];
  bp: number;
  /** sysLen / refLen, 0 when refLen is 0. */
  ratio: number;
  sysLen: number;
  refLen: number;
  /** e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0". */
  signature: string;
}

/** What computeBleu needs besides the statistics. */
export interface BleuScoring {
  smoothMethod?: SmoothMethod;
  smoothValue?: number | null;
  effectiveOrder?: boolean;
  maxNgramOrder?: number;
}

/** sacrebleu's floored log: a zero precision must sink the geometric mean without a -Infinity. */
const flooredLog = (p: number) => (p === 0 ? -9999999999 : log(p));

/** The score from (summed) statistics: sacrebleu's `BLEU.compute_bleu`. Defaults: no smoothing, no effective order. */
export function computeBleu(stats: BleuStats, scoring: BleuScoring = {}): Omit<BleuScore, "signature"> {
  const method = scoring.smoothMethod ?? "none";
  const smoothValue = scoring.smoothValue ?? SMOOTH_DEFAULTS[method] ?? 0;
  const maxOrder = scoring.maxNgramOrder ?? MAX_NGRAM_ORDER;
  if (stats.correct.length < maxOrder || stats.total.length < maxOrder) {
    throw new Error(`BLEU statistics need ${maxOrder} orders of matches and totals`);
  }
  const correct = stats.correct.slice(0, maxOrder);
  const total = stats.total.slice(0, maxOrder);
  const { sysLen, refLen } = stats;

  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? exp(1 - refLen / sysLen) : 0.0;
  const ratio = refLen ? sysLen / refLen : 0;
  const precisions: number[] = new Array<number>(maxOrder).fill(0);
  const result = (score: number) => ({ score, counts: correct, totals: total, precisions, bp, ratio, sysLen, refLen });

  // No match at any order scores 0 whatever the smoothing (sacrebleu #141).
  if (!correct.some((c) => c !== 0)) return result(0.0);

  let mtevalDivisor = 1;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    const i = n - 1;
    if (method === "add-k" && n > 1) {
      correct[i] = correct[i]! + smoothValue;
      total[i] = total[i]! + smoothValue;
    }
    // Orders the hypothesis is too short for end the loop; their precision stays 0.
    if (total[i] === 0) break;
    if (scoring.effectiveOrder) effOrder = n;
    if (correct[i] === 0) {
      if (method === "exp") {
        mtevalDivisor *= 2;
        precisions[i] = 100 / (mtevalDivisor * total[i]!);
      } else if (method === "floor") {
        precisions[i] = (100 * smoothValue) / total[i]!;
      }
    } else {
      precisions[i] = (100 * correct[i]!) / total[i]!;
    }
  }
  return result(bp * exp(pySum(precisions.slice(0, effOrder).map(flooredLog)) / effOrder));
}

/** A segment's references reduced to what BLEU needs: per-order maximum counts and lengths. */
interface BleuReferences {
  ngrams: NgramCounts[];
  lengths: number[];
}

function referenceInfo(refs: readonly string[], maxOrder: number): BleuReferences {
  const merged: NgramCounts[] = [];
  const lengths: number[] = [];
  for (const ref of refs) {
    const { ngrams, length } = allWordNgrams(ref, maxOrder);
    lengths.push(length);
    ngrams.forEach((counts, i) => {
      const into = (merged[i] ??= new Map());
      for (const [ngram, count] of counts) into.set(ngram, Math.max(into.get(ngram) ?? 0, count));
    });
  }
  return { ngrams: merged, lengths };
}

/** The reference length closest to the hypothesis length; on a tie, the shorter. */
function closestRefLength(hypLen: number, refLens: readonly number[]): number {
  let best = -1;
  let bestDiff = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypLen - len);
    if (bestDiff === -1 || diff < bestDiff || (diff === bestDiff && len < best)) {
      bestDiff = diff;
      best = len;
    }
  }
  return best;
}

function segmentStats(hyp: string, refs: BleuReferences, maxOrder: number): BleuStats {
  const { ngrams, length } = allWordNgrams(hyp, maxOrder);
  const correct: number[] = [];
  const total: number[] = [];
  ngrams.forEach((counts, i) => {
    total.push(Math.max(0, length - i));
    correct.push(clippedMatches(counts, refs.ngrams[i]!));
  });
  return { sysLen: length, refLen: closestRefLength(length, refs.lengths), correct, total };
}

function checkOptions(options: BleuOptions): void {
  if (options.tokenize !== undefined && !isTokenizerName(options.tokenize)) {
    throw new Error(`unknown tokenizer "${options.tokenize}" (expected ${TOKENIZERS.join(", ")})`);
  }
  if (options.smoothMethod !== undefined && !SMOOTH_METHODS.includes(options.smoothMethod)) {
    throw new Error(`unknown smoothing method "${options.smoothMethod}" (expected ${SMOOTH_METHODS.join(", ")})`);
  }
  const order = options.maxNgramOrder;
  if (order !== undefined && !(Number.isInteger(order) && order > 0)) {
    throw new Error(`maxNgramOrder must be a positive integer, got ${order}`);
  }
}

/** sacrebleu's BLEU signature, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0". */
export function bleuSignature(nrefs: RefCount, options: BleuOptions, effectiveOrder: boolean): string {
  const method = options.smoothMethod ?? "exp";
  const fallback = SMOOTH_DEFAULTS[method];
  const smooth = fallback === null ? method : `${method}[${pyFixed(options.smoothValue ?? fallback, 2)}]`;
  return formatSignature(nrefs, [
    ["case", options.lowercase ? "lc" : "mixed"],
    ["eff", effectiveOrder ? "yes" : "no"],
    ["tok", options.tokenize ?? "13a"],
    ["smooth", smooth],
  ]);
}

function score(hyps: readonly string[], refStreams: ReferenceStreams, options: BleuOptions, effectiveOrder: boolean): BleuScore {
  checkOptions(options);
  const maxOrder = options.maxNgramOrder ?? MAX_NGRAM_ORDER;
  const tokenizer = getTokenizer(options.tokenize ?? "13a");
  // Lowercase, then strip trailing whitespace, then tokenize: sacrebleu's order.
  const prepare = (s: string) => tokenizer(pyRstrip(options.lowercase ? s.toLowerCase() : s));
  const { refs, nrefs } = referencesBySegment(refStreams, hyps.length);

  const sum: BleuStats = { sysLen: 0, refLen: 0, correct: new Array(maxOrder).fill(0), total: new Array(maxOrder).fill(0) };
  hyps.forEach((hyp, i) => {
    const stats = segmentStats(prepare(hyp), referenceInfo(refs[i]!.map(prepare), maxOrder), maxOrder);
    sum.sysLen += stats.sysLen;
    sum.refLen += stats.refLen;
    for (let n = 0; n < maxOrder; n++) {
      sum.correct[n] += stats.correct[n]!;
      sum.total[n] += stats.total[n]!;
    }
  });
  const result = computeBleu(sum, {
    smoothMethod: options.smoothMethod ?? "exp",
    smoothValue: options.smoothValue,
    effectiveOrder,
    maxNgramOrder: maxOrder,
  });
  return { ...result, signature: bleuSignature(nrefs, options, effectiveOrder) };
}

/** Corpus BLEU of hypotheses against reference streams (`refs[k][i]`: k-th reference of segment i). */
export function corpusBleu(hyps: readonly string[], refs: ReferenceStreams, options: BleuOptions = {}): BleuScore {
  if (hyps.length === 0) throw new Error("no hypotheses given");
  return score(hyps, refs, options, options.effectiveOrder ?? false);
}

/** BLEU of one hypothesis against its references; effective order is on unless turned off. */
export function sentenceBleu(hyp: string, refs: SegmentReferences, options: BleuOptions = {}): BleuScore {
  return score(
    [hyp],
    refs.map((ref) => [ref]),
    options,
    options.effectiveOrder ?? true,
  );
}

/** sacrebleu's result string: "BLEU = 42.51 71.4/50.0/35.7/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 14 ref_len = 14)". */
export function formatBleuScore(s: Omit<BleuScore, "signature">): string {
  const precisions = s.precisions.map((p) => pyFixed(p, 1)).join("/");
  return (
    `BLEU = ${pyFixed(s.score, 2)} ${precisions} (BP = ${pyFixed(s.bp, 3)} ratio = ${pyFixed(s.ratio, 3)} ` +
    `hyp_len = ${s.sysLen} ref_len = ${s.refLen})`
  );
}
