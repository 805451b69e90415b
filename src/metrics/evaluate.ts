/**
 * Evaluating a model on data with named metrics: perplexity (token-weighted, over every row) and the
 * generation metrics (greedy continuations of "prompt" scored against "completion"). The DSL's eval() and
 * the trials of a sweep both measure through here.
 */
import { UserError } from "../core/errors.js";
import type { Example } from "../data/batch.js";
import type { CausalLM } from "../models/causal-lm.js";
import type { Tokenizer } from "../models/tokenizer.js";
import {
  type GeneratedExample,
  generateAll,
  type GenerationEvalOptions,
  type GenerationMetric,
  type GenerationRequest,
  generationRequests,
  GENERATION_METRICS,
  type GenerationScores,
  type PromptCompletion,
  type SamplingChoice,
  scoreGenerations,
} from "./generation-eval.js";
import {
  type PerplexityOptions,
  type PerplexityResult,
  perplexityResult,
  planPerplexity,
  scoreWindows,
  type WindowScores,
} from "./perplexity.js";

export const METRICS = ["perplexity", ...GENERATION_METRICS] as const;
export type Metric = (typeof METRICS)[number];

export interface EvalScores {
  perplexity?: number;
  loss?: number;
  tokens?: number;
  bleu?: number;
  chrf?: number;
  exact_match?: number;
  /** Generation metrics: each prompt, its reference completion and the generated text. */
  examples?: GeneratedExample[];
}

/** What the metrics read from the data, computed only when a metric needs it. */
export interface EvalInput {
  examples(): Example[];
  rows(): Iterable<Record<string, unknown>> | undefined;
}

export function isMetric(name: unknown): name is Metric {
  return (METRICS as readonly unknown[]).includes(name);
}

/** The rows' prompt/completion pairs, or undefined if some row has none. */
export function promptCompletionPairs(rows: Iterable<Record<string, unknown>>): PromptCompletion[] | undefined {
  const pairs: PromptCompletion[] = [];
  for (const r of rows) {
    if (typeof r.prompt !== "string" || typeof r.completion !== "string") return undefined;
    pairs.push({ prompt: r.prompt, completion: r.completion });
  }
  return pairs;
}

/**
 * Where an evaluation's forward passes run, for one model: in this thread (inThisThread), or split over every core
 * by train/eval-threads.ts. Both give the same numbers: work is split by whole batches and whole generations.
 */
export interface EvalCompute {
  readonly model: CausalLM;
  scoreWindows(batches: Example[][]): Promise<WindowScores>;
  generate(requests: GenerationRequest[], sampling: SamplingChoice): Promise<number[][]>;
}

export function inThisThread(model: CausalLM): EvalCompute {
  return {
    model,
    scoreWindows: async (batches) => scoreWindows(model, batches),
    generate: async (requests, sampling) => generateAll(model, requests, sampling),
  };
}

export async function perplexityOn(compute: EvalCompute, examples: Example[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const plan = planPerplexity(compute.model, examples, options);
  return perplexityResult(plan, await compute.scoreWindows(plan.batches));
}

export async function generationScoresOn(
  compute: EvalCompute,
  tokenizer: Tokenizer,
  pairs: PromptCompletion[],
  metrics: readonly GenerationMetric[],
  options: GenerationEvalOptions = {},
): Promise<GenerationScores> {
  const { maxNewTokens: _budget, ...sampling } = options;
  const generated = await compute.generate(generationRequests(tokenizer, pairs, options), sampling);
  return scoreGenerations(tokenizer, pairs, generated, metrics);
}

export async function evaluate(
  compute: EvalCompute,
  input: EvalInput,
  metrics: readonly string[],
  generation: { tokenizer: Tokenizer | undefined; eosTokenIds: number[] },
): Promise<EvalScores> {
  const unknown = metrics.find((m) => !isMetric(m));
  if (unknown !== undefined) throw new UserError(`metrics: unknown metric ${JSON.stringify(unknown)}; known: ${METRICS.join(", ")}`);
  const scores: EvalScores = {};
  if (metrics.includes("perplexity")) {
    const p = await perplexityOn(compute, input.examples());
    Object.assign(scores, { perplexity: p.perplexity, loss: p.loss, tokens: p.tokens });
  }
  const generative = metrics.filter((m): m is GenerationMetric => m !== "perplexity");
  if (generative.length) {
    const rows = input.rows();
    const pairs = rows && promptCompletionPairs(rows);
    if (!pairs) throw new UserError(`metrics ${generative.join(", ")} need rows with "prompt" and "completion"`);
    if (!generation.tokenizer) throw new UserError(`metrics ${generative.join(", ")} generate text: the model needs a tokenizer.json`);
    Object.assign(
      scores,
      await generationScoresOn(compute, generation.tokenizer, pairs, generative, { eosTokenIds: generation.eosTokenIds }),
    );
  }
  return scores;
}
