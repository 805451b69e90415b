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

/**
 * The data as a Dataset (whose recipe and fingerprint a study needs): rows written in code become a Dataset of
 * those rows, token sequences rows of "input_ids" (and "labels").
 */
export function toDataset(data: DataInput, what: string): Dataset {
  if (data instanceof Dataset) return data;
  if (!Array.isArray(data))
    throw new UserError(
      `${what}: expected a dataset(...) or an array of rows, got ${isTokenizable(data) ? "another kind of data" : typeof data}`,
    );
  const rows = (data as readonly Record<string, unknown>[]).map((row) => {
    const e = row as unknown as Example;
    return Array.isArray(e.inputIds) ? { input_ids: e.inputIds, ...(e.labels ? { labels: e.labels } : {}) } : row;
  });
  return Dataset.fromRows(rows, what);
}

/** The raw rows of the data (a Dataset's rows, or rows written in code), when it has them. */
export function dataRows(data: DataInput): Iterable<Record<string, unknown>> | undefined {
  if (isTokenizable(data)) return (data as unknown as { rows?: () => Iterable<Record<string, unknown>> }).rows?.();
  return data as readonly Record<string, unknown>[];
}

/**
 * `dataset("sotu", { president: "Barack Obama" })`, `dataset("train.jsonl")`, `dataset("notes.txt", { tokenizer, blockSize: 128 })`
 * or `dataset([{ prompt, completion }, …])`: a built-in corpus, a file (.jsonl, .csv, .tsv, .txt), or rows in code.
 */
export function dataset(source: string | readonly Record<string, unknown>[], options: CorpusOptions & Partial<PackOptions> = {}): Dataset {
  return typeof source === "string" ? Dataset.load(source, options) : Dataset.fromRows(source);
}

export { Dataset };
