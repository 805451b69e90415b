/**
 * chrF (Popović, 2015) and chrF++ (Popović, 2017) exactly as sacrebleu 2.x's CHRF:
 * character n-grams up to `charOrder` (whitespace removed unless `whitespace`), plus word
 * n-grams up to `wordOrder` for chrF++, F-beta over averaged precision and recall.
 */
import { allCharNgrams, clippedMatches, totalCount, wordNgrams, type NgramCounts } from "./ngrams.js";
import { codePoints, pyFixed, pySplit } from "./pycompat.js";
import { formatSignature, referencesBySegment, type RefCount, type ReferenceStreams, type SegmentReferences } from "./references.js";

export interface ChrfOptions {
  /** Default 6. */
  charOrder?: number;
  /** Default 0 (chrF); 2 gives chrF++. */
  wordOrder?: number;
  /** Weight of recall over precision. Default 2. */
  beta?: number;
  /** Default false. */
  lowercase?: boolean;
  /** Keep whitespace inside character n-grams. Default false. */
  whitespace?: boolean;
  /**
   * Default false, as in sacrebleu 2.x: average precision and recall over the orders that
   * both sides have ("eff:yes" in the signature). True gives chrF++.py/NLTK/Moses epsilon
   * smoothing: average the per-order F scores, an empty order counting as 1e-16.
   */
  epsSmoothing?: boolean;
}

export interface ChrfScore {
  /** "chrF2", "chrF2++", … (one "+" per word order). */
  name: string;
  /** 0–100. */
  score: number;
  charOrder: number;
  wordOrder: number;
  beta: number;
  /** e.g. "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0". */
  signature: string;
}

type Resolved = Required<ChrfOptions>;

function resolve(options: ChrfOptions): Resolved {
  const resolved = {
    charOrder: 6,
    wordOrder: 0,
    beta: 2,
    lowercase: false,
    whitespace: false,
    epsSmoothing: false,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Resolved;
  for (const key of ["charOrder", "wordOrder", "beta"] as const) {
    const v = resolved[key];
    if (!Number.isInteger(v) || v < 0) throw new Error(`${key} must be a non-negative integer, got ${v}`);
  }
  if (resolved.charOrder + resolved.wordOrder === 0) throw new Error("charOrder + wordOrder must be positive");
  return resolved;
}

const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");

/** chrF++'s word split: one ASCII punctuation mark peeled off the end, else off the start, of each word. */
function wordsWithPunctuationSplit(line: string): string[] {
  const words: string[] = [];
  for (const word of pySplit(line)) {
    const chars = codePoints(word);
    if (chars.length === 1) words.push(word);
    else if (PUNCTUATION.has(chars[chars.length - 1]!)) words.push(chars.slice(0, -1).join(""), chars[chars.length - 1]!);
    else if (PUNCTUATION.has(chars[0]!)) words.push(chars[0]!, chars.slice(1).join(""));
    else words.push(word);
  }
  return words;
}

/** Character n-grams of orders 1..charOrder, then word n-grams of orders 1..wordOrder. */
function ngramsOf(line: string, o: Resolved): NgramCounts[] {
  const ngrams = allCharNgrams(line, o.charOrder, o.whitespace);
  if (o.wordOrder > 0) {
    const words = wordsWithPunctuationSplit(line);
    for (let n = 1; n <= o.wordOrder; n++) ngrams.push(wordNgrams(words, n));
  }
  return ngrams;
}

/** [hyp n-grams, ref n-grams, matches] for each order, flattened. */
function matchStats(hyp: readonly NgramCounts[], ref: readonly NgramCounts[]): number[] {
  const stats: number[] = [];
  hyp.forEach((h, i) => {
    const r = ref[i]!;
    // An order the reference lacks counts no hypothesis n-grams (as sacrebleu does).
    stats.push(r.size > 0 ? totalCount(h) : 0, totalCount(r), clippedMatches(h, r));
  });
  return stats;
}

/** The F-beta score (0–100) of summed statistics: sacrebleu's `CHRF._compute_f_score`. */
export function chrfFromStats(stats: readonly number[], options: ChrfOptions = {}): number {
  return fScore(stats, resolve(options));
}

function fScore(stats: readonly number[], o: Resolved): number {
  const order = o.charOrder + o.wordOrder;
  const eps = 1e-16;
  const factor = o.beta ** 2;
  let epsScore = 0;
  let avgPrec = 0;
  let avgRec = 0;
  let effectiveOrder = 0;
  for (let i = 0; i < order; i++) {
    const nHyp = stats[3 * i]!,
      nRef = stats[3 * i + 1]!,
      nMatch = stats[3 * i + 2]!;
    const prec = nHyp > 0 ? nMatch / nHyp : eps;
    const rec = nRef > 0 ? nMatch / nRef : eps;
    const denom = factor * prec + rec;
    epsScore += denom > 0 ? ((1 + factor) * prec * rec) / denom : eps;
    if (nHyp > 0 && nRef > 0) {
      avgPrec += prec;
      avgRec += rec;
      effectiveOrder++;
    }
  }
  if (o.epsSmoothing) return (100 * epsScore) / order;
  if (effectiveOrder === 0) return 0.0;
  avgPrec /= effectiveOrder;
  avgRec /= effectiveOrder;
  if (avgPrec + avgRec === 0) return 0.0;
  return 100 * (((1 + factor) * avgPrec * avgRec) / (factor * avgPrec + avgRec));
}

/** Statistics of a hypothesis against its best reference (highest F; the first on ties). */
function segmentStats(hyp: string, refs: readonly string[], o: Resolved): number[] {
  const hypNgrams = ngramsOf(hyp, o);
  let best: number[] = [];
  let bestF = -1;
  for (const ref of refs) {
    const stats = matchStats(hypNgrams, ngramsOf(ref, o));
    const f = fScore(stats, o);
    if (f > bestF) {
      bestF = f;
      best = stats;
    }
  }
  return best;
}

export function chrfSignature(nrefs: RefCount, options: ChrfOptions = {}): string {
  const o = resolve(options);
  return formatSignature(nrefs, [
    ["case", o.lowercase ? "lc" : "mixed"],
    ["eff", o.epsSmoothing ? "no" : "yes"],
    ["nc", o.charOrder],
    ["nw", o.wordOrder],
    ["space", o.whitespace ? "yes" : "no"],
  ]);
}

function score(hyps: readonly string[], refStreams: ReferenceStreams, options: ChrfOptions): ChrfScore {
  const o = resolve(options);
  const prepare = (s: string) => (o.lowercase ? s.toLowerCase() : s);
  const { refs, nrefs } = referencesBySegment(refStreams, hyps.length);
  const sum = new Array<number>(3 * (o.charOrder + o.wordOrder)).fill(0);
  hyps.forEach((hyp, i) => {
    segmentStats(prepare(hyp), refs[i]!.map(prepare), o).forEach((v, j) => {
      sum[j] += v;
    });
  });
  return {
    name: `chrF${o.beta}${"+".repeat(o.wordOrder)}`,
    score: fScore(sum, o),
    charOrder: o.charOrder,
    wordOrder: o.wordOrder,
    beta: o.beta,
    signature: chrfSignature(nrefs, o),
  };
}

/** Corpus chrF: statistics summed over segments, then one F score (`refs[k][i]`: k-th reference of segment i). */
export function corpusChrf(hyps: readonly string[], refs: ReferenceStreams, options: ChrfOptions = {}): ChrfScore {
  if (hyps.length === 0) throw new Error("no hypotheses given");
  return score(hyps, refs, options);
}

/** chrF of one hypothesis against its references. */
export function sentenceChrf(hyp: string, refs: SegmentReferences, options: ChrfOptions = {}): ChrfScore {
  return score(
    [hyp],
    refs.map((ref) => [ref]),
    options,
  );
}

/** sacrebleu's result string, e.g. "chrF2 = 59.73" or "chrF2++ = 57.31". */
export function formatChrfScore(s: Pick<ChrfScore, "name" | "score">): string {
  return `${s.name} = ${pyFixed(s.score, 2)}`;
}
