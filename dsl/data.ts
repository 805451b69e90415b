/** What DSL calls accept as data, turned into token sequences for a given model. */
import type { Example } from "../src/data/batch.js";
import { Dataset, type PackOptions } from "../src/data/dataset.js";
import type { CorpusOptions } from "../src/data/corpora.js";
import { rowToExample } from "../src/data/rows.js";
import { UserError } from "../src/core/errors.js";
import type { Tokenizer } from "../src/models/tokenizer.js";

/** Anything with rows that can tokenize itself (the data layer's Dataset). */
export interface TokenizableData {
  toExamples(tokenizer: Tokenizer | undefined, options: { vocabSize: number; maxLength?: number }): Example[];
}

/** A Dataset, rows written in code ({text} | {prompt, completion} | {input_ids}), or ready token sequences. */
export type DataInput = TokenizableData | readonly Record<string, unknown>[] | readonly Example[];

function isTokenizable(d: unknown): d is TokenizableData {
  return typeof (d as TokenizableData).toExamples === "function";
}

export function toExamples(data: DataInput, tokenizer: Tokenizer | undefined, vocabSize: number): Example[] {
  if (isTokenizable(data)) return data.toExamples(tokenizer, { vocabSize });
  if (!Array.isArray(data)) throw new UserError("data: expected a dataset(...), an array of rows, or an array of { inputIds } examples");
  return data.map((row, i) => {
    if (Array.isArray((row as Example).inputIds)) return row as Example;
    return rowToExample({ file: "rows", tokenizer, vocabSize }, { line: i + 1, value: row as Record<string, unknown> });
  });
}

/** Prompt/completion pairs of the data (for generation-based metrics), or undefined if rows have none. */
export function promptCompletionPairs(data: DataInput): { prompt: string; completion: string }[] | undefined {
  const rows = isTokenizable(data) ? (data as unknown as { rows?: () => Iterable<Record<string, unknown>> }).rows?.() : data;
  if (!rows) return undefined;
  const pairs: { prompt: string; completion: string }[] = [];
  for (const r of rows as Iterable<Record<string, unknown>>) {
    if (typeof r.prompt !== "string" || typeof r.completion !== "string") return undefined;
    pairs.push({ prompt: r.prompt, completion: r.completion });
  }
  return pairs;
}

/**
 * `dataset("sotu", { president: "Barack Obama" })`, `dataset("train.jsonl")`, `dataset("notes.txt", { tokenizer, blockSize: 128 })`
 * or `dataset([{ prompt, completion }, …])`: a built-in corpus, a file (.jsonl, .csv, .tsv, .txt), or rows in code.
 */
export function dataset(source: string | readonly Record<string, unknown>[], options: CorpusOptions & Partial<PackOptions> = {}): Dataset {
  return typeof source === "string" ? Dataset.load(source, options) : Dataset.fromRows(source);
}

export { Dataset };
