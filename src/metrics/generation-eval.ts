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

export interface PromptCompletion {
  prompt: string;
  completion: string;
}

export interface GenerationEvalOptions extends Partial<Omit<GenerationOptions, "eosTokenIds">> {
  eosTokenIds?: number[];
}

/** One prompt to continue, as ids, and how many tokens it may add. */
export interface GenerationRequest {
  promptIds: number[];
  maxNewTokens: number;
}

/** How each generation samples (greedy unless told) and where it stops, apart from its own budget. */
export type SamplingChoice = Omit<GenerationEvalOptions, "maxNewTokens">;

export function generationRequests(
  tokenizer: Tokenizer,
  pairs: PromptCompletion[],
  options: GenerationEvalOptions = {},
): GenerationRequest[] {
  return pairs.map((p) => ({
    promptIds: tokenizer.encode(p.prompt),
    // Room for the reference's length twice over, unless the caller says otherwise.
    maxNewTokens: options.maxNewTokens ?? Math.max(8, 2 * tokenizer.encode(p.completion, { specialTokens: false }).length),
  }));
}

/**
 * The new ids of each request, in order. Each generation starts its own random stream from the seed, so a request
 * gives the same ids whichever thread runs it and whatever ran before.
 */
export function generateAll(model: CausalLM, requests: GenerationRequest[], sampling: SamplingChoice): number[][] {
  return requests.map((r) => generate(model, r.promptIds, { temperature: 0, ...sampling, maxNewTokens: r.maxNewTokens }).ids);
}

/** The metrics of the generations (ids per pair, in order) against the pairs' completions. */
export function scoreGenerations(
  tokenizer: Tokenizer,
  pairs: PromptCompletion[],
  generated: number[][],
  metrics: readonly GenerationMetric[],
): GenerationScores {
  const examples = pairs.map((p, i) => ({ prompt: p.prompt, completion: p.completion, generated: tokenizer.decode(generated[i]!).trim() }));
  const hyps = examples.map((e) => e.generated);
  const refs = [examples.map((e) => e.completion.trim())];
  const scores: GenerationScores = { examples };
  if (metrics.includes("bleu")) scores.bleu = corpusBleu(hyps, refs).score;
  if (metrics.includes("chrf")) scores.chrf = corpusChrf(hyps, refs).score;
  if (metrics.includes("exact_match")) scores.exact_match = exactMatch(hyps, refs[0]!);
  return scores;
}

/** Generation metrics in this thread (eval-threads.ts computes the same on every core). */
export function generationScores(
  model: CausalLM,
  tokenizer: Tokenizer,
  pairs: PromptCompletion[],
  metrics: readonly GenerationMetric[],
  options: GenerationEvalOptions = {},
): GenerationScores {
  const { maxNewTokens: _budget, ...sampling } = options;
  return scoreGenerations(tokenizer, pairs, generateAll(model, generationRequests(tokenizer, pairs, options), sampling), metrics);
}
