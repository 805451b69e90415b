/**
 * Evaluating a model on data with named metrics: perplexity (token-weighted, over every row) and the
 * generation metrics (greedy continuations of "prompt" scored against "completion"). The DSL's eval() and
 * the trials of a sweep both measure through here.
 */
import { UserError } from "../core/errors.js";
import type { Example } from "../data/batch.js";
import type { CausalLM } from "../models/causal-lm.js";
import type { Tokenizer } from "../models/tokenizer.js";
import { type GeneratedExample, GENERATION_METRICS, type GenerationMetric, generationScores } from "./generation-eval.js";
import { perplexity } from "./perplexity.js";

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

export interface PromptCompletion {
  prompt: string;
  completion: string;
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

export function evaluate(
  model: CausalLM,
  input: EvalInput,
  metrics: readonly string[],
  generation: { tokenizer: Tokenizer | undefined; eosTokenIds: number[] },
): EvalScores {
  const unknown = metrics.find((m) => !isMetric(m));
  if (unknown !== undefined) throw new UserError(`metrics: unknown metric ${JSON.stringify(unknown)}; known: ${METRICS.join(", ")}`);
  const scores: EvalScores = {};
  if (metrics.includes("perplexity")) {
    const p = perplexity(model, input.examples());
    Object.assign(scores, { perplexity: p.perplexity, loss: p.loss, tokens: p.tokens });
  }
  const generative = metrics.filter((m): m is GenerationMetric => m !== "perplexity");
  if (generative.length) {
    const rows = input.rows();
    const pairs = rows && promptCompletionPairs(rows);
    if (!pairs) throw new UserError(`metrics ${generative.join(", ")} need rows with "prompt" and "completion"`);
    if (!generation.tokenizer) throw new UserError(`metrics ${generative.join(", ")} generate text: the model needs a tokenizer.json`);
    Object.assign(scores, generationScores(model, generation.tokenizer, pairs, generative, { eosTokenIds: generation.eosTokenIds }));
  }
  return scores;
}
