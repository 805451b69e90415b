/**
 * Generation-based evaluation: for prompt/completion pairs, generate from each prompt (greedy by
 * default) and score the generations against the completions with BLEU, chrF and exact match.
 */
import type { CausalLM } from "../models/causal-lm.js";
import { generate, type GenerationOptions } from "../models/generation.js";
import type { Tokenizer } from "../models/tokenizer.js";
import { corpusBleu } from "./bleu.js";
import { corpusChrf } from "./chrf.js";
import { exactMatch } from "./match.js";

export const GENERATION_METRICS = ["bleu", "chrf", "exact_match"] as const;
export type GenerationMetric = (typeof GENERATION_METRICS)[number];

export interface GeneratedExample {
  prompt: string;
  completion: string;
  generated: string;
}

export interface GenerationScores {
  bleu?: number;
  chrf?: number;
  exact_match?: number;
  examples: GeneratedExample[];
}

export interface GenerationEvalOptions extends Partial<Omit<GenerationOptions, "eosTokenIds">> {
  eosTokenIds?: number[];
}

export function generationScores(
  model: CausalLM,
  tokenizer: Tokenizer,
  pairs: { prompt: string; completion: string }[],
  metrics: readonly GenerationMetric[],
  options: GenerationEvalOptions = {},
): GenerationScores {
  const examples = pairs.map((p) => {
    // Room for the reference's length twice over, unless the caller says otherwise.
    const budget = options.maxNewTokens ?? Math.max(8, 2 * tokenizer.encode(p.completion, { specialTokens: false }).length);
    const out = generate(model, tokenizer.encode(p.prompt), { temperature: 0, ...options, maxNewTokens: budget });
    return { prompt: p.prompt, completion: p.completion, generated: tokenizer.decode(out.ids).trim() };
  });
  const hyps = examples.map((e) => e.generated);
  const refs = [examples.map((e) => e.completion.trim())];
  const scores: GenerationScores = { examples };
  if (metrics.includes("bleu")) scores.bleu = corpusBleu(hyps, refs).score;
  if (metrics.includes("chrf")) scores.chrf = corpusChrf(hyps, refs).score;
  if (metrics.includes("exact_match")) scores.exact_match = exactMatch(hyps, refs[0]!);
  return scores;
}
