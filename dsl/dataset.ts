import { Dataset } from "../src/data/dataset.js";
import type { CorpusOptions } from "../src/data/corpora.js";
import type { PackOptions } from "../src/data/dataset.js";

/**
 * `dataset("sotu", { president: "Barack Obama" })`, `dataset("train.jsonl")`, `dataset("notes.txt", { tokenizer, blockSize: 128 })`
 * or `dataset([{ prompt, completion }, …])`: a built-in corpus, a file (.jsonl, .csv, .tsv, .txt), or rows in code.
 */
export function dataset(source: string | readonly Record<string, unknown>[], options: CorpusOptions & Partial<PackOptions> = {}): Dataset {
  return typeof source === "string" ? Dataset.load(source, options) : Dataset.fromRows(source);
}

export { Dataset };
