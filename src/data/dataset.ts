/**
 * An immutable, in-memory dataset of raw rows (plain objects) that remembers where every row came from.
 * Verbs return new datasets (as arquero's tables do); nothing is tokenized until toExamples().
 *
 *   const { train, validation } = Dataset.load("data.csv").filter((r) => r.label !== "").split({ train: 0.9, validation: 0.1 }, 42);
 *   const examples = train.toExamples(tokenizer, { maxLength: 256 });
 *
 * Every row carries its provenance ("data.csv:7", "rows:3", "sotu:12", "story.txt block 4"), kept through
 * map/filter/shuffle/split, so a bad row fails with `file:line: what is wrong` as a UserError. A dataset also
 * knows how it was built (recipe(), recipe.ts) when every step can be replayed elsewhere, and its rows' digest
 * (fingerprint()).
 */
import * as path from "node:path";
import { digestOf } from "../core/canonical.js";
import { UserError } from "../core/errors.js";
import { Random } from "../core/random.js";
import type { Tokenizer } from "../models/tokenizer.js";
import type { Example } from "./batch.js";
import { corpusRows, corpusWhere, describeCorpus, isCorpusName, CORPORA, type CorpusOptions } from "./corpora.js";
import { readDelimited } from "./csv.js";
import { readJsonl } from "./jsonl.js";
import { type PackOptions, packOptions, packText } from "./pack.js";
import { type DatasetRecipe, withStep } from "./recipe.js";
import { convertRow } from "./rows.js";
import { readUtf8 } from "./text-file.js";

/** A raw row: a frozen plain object. */
export type Row = Readonly<Record<string, unknown>>;

/** An Example that also says which row it came from (still assignable to Example). */
export interface SourcedExample extends Example {
  source: string;
}

export type { PackOptions };

export interface TextOptions extends PackOptions {
  /** pack(): the field holding the text (default "text"). */
  field?: string;
  /** pack(): what joins consecutive rows' texts (default "\n\n"). */
  separator?: string;
}

export interface ToExamplesOptions {
  /** Ids must lie in 0…vocabSize−1; default: the tokenizer's vocabulary size. Pass the model's config.vocabSize. */
  vocabSize?: number;
  /** Keep only the first maxLength tokens of each example (the start is kept). */
  maxLength?: number;
}

export interface SplitFractions {
  train?: number;
  validation?: number;
  test?: number;
}

export interface Splits {
  train: Dataset;
  validation: Dataset;
  test: Dataset;
}

export type LoadOptions = CorpusOptions & Partial<PackOptions>;

interface Entry {
  readonly row: Row;
  readonly where: string;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  return v === null
    ? "null"
    : Array.isArray(v)
      ? "an array"
      : typeof v === "object"
        ? `a ${(v as object).constructor?.name ?? "object"}`
        : (JSON.stringify(v) ?? typeof v);
}

function checkCount(n: unknown, what: string): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    throw new UserError(`${what} must be a non-negative integer, got ${JSON.stringify(n)}`);
  return n;
}

function checkSeed(seed: unknown, what: string): number {
  if (typeof seed !== "number" || !Number.isInteger(seed))
    throw new UserError(`${what}: the seed must be an integer, got ${JSON.stringify(seed)}`);
  return seed;
}

export class Dataset implements Iterable<Row> {
  private digest: string | undefined;

  private constructor(
    /** Where the rows came from, e.g. "data.jsonl", "sotu (president: Barack Obama)", "data.csv (train split)". */
    readonly source: string,
    private readonly entries: readonly Entry[],
    /** How to build the same rows again; undefined once a closure or a tokenizer made them. */
    private readonly steps?: DatasetRecipe,
  ) {
    Object.freeze(entries);
  }

  // ---- constructors ----

  /** Rows written in code; they are deep-copied (structuredClone) and frozen. Errors name them `name:index` (1-based). */
  static fromRows(rows: readonly Record<string, unknown>[], name = "rows"): Dataset {
    if (!Array.isArray(rows)) throw new UserError(`${name}: expected an array of row objects, got ${describe(rows)}`);
    return new Dataset(
      name,
      rows.map((row, i) => {
        const where = `${name}:${i + 1}`;
        if (!isPlainObject(row)) throw new UserError(`${where}: a row must be a plain object, got ${describe(row)}`);
        let copy: Record<string, unknown>;
        try {
          copy = structuredClone(row);
        } catch (e) {
          throw new UserError(`${where}: a row must hold plain data (strings, numbers, arrays, objects): ${(e as Error).message}`);
        }
        return { row: deepFreeze(copy), where };
      }),
    );
  }

  /** JSON Lines: one object per line; blank lines are skipped; rows keep their line numbers. */
  static fromJsonl(file: string): Dataset {
    return new Dataset(
      file,
      readJsonl(file).map(({ line, value }) => ({ row: deepFreeze(value), where: `${file}:${line}` })),
      { load: path.resolve(file) },
    );
  }

  /**
   * CSV with a header row, parsed by arquero. Cells are strings (no type guessing; an empty cell is ""); rows
   * keep the line they start on. `delimiter` "\t" reads TSV.
   */
  static fromCsv(file: string, { delimiter = "," }: { delimiter?: string } = {}): Dataset {
    if (delimiter.length !== 1) throw new UserError(`${file}: the delimiter must be one character, got ${JSON.stringify(delimiter)}`);
    const byExtension = (path.extname(file).toLowerCase() === ".tsv" ? "\t" : ",") === delimiter;
    return new Dataset(
      file,
      readDelimited(file, delimiter).map(({ line, value }) => ({ row: Object.freeze(value), where: `${file}:${line}` })),
      byExtension ? { load: path.resolve(file) } : undefined,
    );
  }

  static fromTsv(file: string): Dataset {
    return Dataset.fromCsv(file, { delimiter: "\t" });
  }

  /**
   * Plain text for language modelling: the whole text is tokenized once, with BOS at the start (when the
   * tokenizer has one) and no EOS, then cut into consecutive blocks of `blockSize` tokens, each a row
   * `{"input_ids": [...]}` scored on every token. The last, shorter block is kept if it has ≥ 2 tokens (one token
   * predicts nothing). A string is a file path; `{ text }` is the text itself.
   */
  static fromText(source: string | { text: string; name?: string }, options: PackOptions): Dataset {
    const [name, text] = typeof source === "string" ? [source, readUtf8(source, "a .txt file")] : [source.name ?? "text", source.text];
    if (typeof text !== "string") throw new UserError(`${name}: expected the text as a string, got ${describe(text)}`);
    return new Dataset(name, frozenBlocks(packText(text, name, options)));
  }

  /**
   * A built-in corpus by name (moby-dick, sotu, cmudict, spam-assassin; see corpora.ts for their rows and
   * options) or a file by extension: .jsonl / .json (JSON Lines), .csv, .tsv, .txt (needs blockSize and
   * tokenizer). moby-dick with { blockSize, tokenizer } is packed like a .txt file (sections joined by "\n\n").
   */
  static load(nameOrPath: string, options: LoadOptions = {}): Dataset {
    if (typeof nameOrPath !== "string" || nameOrPath === "")
      throw new UserError(`Dataset.load: expected a corpus name or a file path, got ${JSON.stringify(nameOrPath)}`);
    if (isCorpusName(nameOrPath)) {
      const rows = corpusRows(nameOrPath, options);
      const { tokenizer, blockSize, ...corpusOptions } = options;
      const ds = new Dataset(
        describeCorpus(nameOrPath, options),
        rows.map((row, i) => ({ row: deepFreeze(row), where: corpusWhere(nameOrPath, row, i) })),
        { load: nameOrPath, options: structuredClone(corpusOptions) },
      );
      if (blockSize === undefined && tokenizer === undefined) return ds;
      if (nameOrPath !== "moby-dick")
        throw new UserError(
          `${nameOrPath}: blockSize/tokenizer pack plain text; only moby-dick (and .txt files) are packed — tokenize the others with toExamples()`,
        );
      return ds.pack(packOptions(options, nameOrPath));
    }
    const ext = path.extname(nameOrPath).toLowerCase();
    switch (ext) {
      case ".json":
        if (/^\s*\[/.test(readUtf8(nameOrPath, "a .json file").slice(0, 1000))) {
          throw new UserError(
            `${nameOrPath}: holds a JSON array; loralab reads JSON Lines (one object per line) — write one row per line, or load the array and use Dataset.fromRows()`,
          );
        }
        return Dataset.fromJsonl(nameOrPath);
      case ".jsonl":
        return Dataset.fromJsonl(nameOrPath);
      case ".csv":
        return Dataset.fromCsv(nameOrPath);
      case ".tsv":
        return Dataset.fromTsv(nameOrPath);
      case ".txt":
        return Dataset.fromText(nameOrPath, packOptions(options, nameOrPath));
      default:
        throw new UserError(
          `${nameOrPath}: ${ext ? `unknown file type "${ext}"` : "not a built-in corpus"}; load a file ending in .jsonl, .json (JSON Lines), .csv, .tsv or .txt, or a built-in corpus: ${CORPORA.join(", ")}`,
        );
    }
  }

  // ---- reading ----

  get length(): number {
    return this.entries.length;
  }

  /** The rows (frozen objects), in order. */
  rows(): Row[] {
    return this.entries.map((e) => e.row);
  }

  /** Where each row came from ("data.csv:7"), parallel to rows(). */
  sources(): string[] {
    return this.entries.map((e) => e.where);
  }

  at(index: number): Row | undefined {
    return this.entries.at(index)?.row;
  }

  *[Symbol.iterator](): Iterator<Row> {
    for (const e of this.entries) yield e.row;
  }

  toString(): string {
    return `Dataset(${this.source}, ${this.length} rows)`;
  }

  /**
   * How this dataset was built, as plain JSON (recipe.ts): the corpus or file and the replayable steps after it,
   * or, when a closure (map, filter) or a tokenizer (pack) made the rows, the rows themselves.
   */
  recipe(): DatasetRecipe {
    return this.steps ?? { rows: this.rows() as Record<string, unknown>[], name: this.source };
  }

  /** True when recipe() describes the rows' origin rather than carrying them. */
  get replayable(): boolean {
    return this.steps !== undefined;
  }

  /** The sha256 of the rows' canonical JSON: equal rows in the same order, equal fingerprints. */
  fingerprint(): string {
    return (this.digest ??= digestOf(this.rows(), this.source));
  }

  // ---- verbs ----

  /** A new row per row; `fn` must return a plain object (it is frozen). The row keeps its provenance. */
  map(fn: (row: Row, index: number) => Record<string, unknown>): Dataset {
    return new Dataset(
      this.source,
      this.entries.map((e, i) => {
        const out = fn(e.row, i);
        if (!isPlainObject(out)) throw new UserError(`${e.where}: map() must return a plain object per row, got ${describe(out)}`);
        return { row: deepFreeze(out), where: e.where };
      }),
    );
  }

  filter(fn: (row: Row, index: number) => boolean): Dataset {
    return new Dataset(
      this.source,
      this.entries.filter((e, i) => fn(e.row, i)),
    );
  }

  /** The first n rows (all of them if there are fewer). */
  take(n: number): Dataset {
    return new Dataset(this.source, this.entries.slice(0, checkCount(n, "take(n)")), withStep(this.steps, { take: n }));
  }

  /** Rows start…end−1, as Array.prototype.slice. */
  slice(start = 0, end?: number): Dataset {
    const bounds: [number] | [number, number] = end === undefined ? [start] : [start, end];
    const replayable = bounds.every(Number.isInteger) ? this.steps : undefined;
    return new Dataset(this.source, this.entries.slice(start, end), withStep(replayable, { slice: bounds }));
  }

  /** A seeded Fisher–Yates shuffle (random.ts): the same seed gives the same order on every platform. */
  shuffle(seed = 0): Dataset {
    return new Dataset(this.source, new Random(checkSeed(seed, "shuffle")).shuffle(this.entries), withStep(this.steps, { shuffle: seed }));
  }

  /**
   * Seeded, disjoint train/validation/test splits. Fractions are ≥ 0 and sum to 1 (a missing one is 0). For n
   * rows, test gets ⌊n·test⌋ rows and validation ⌊n·validation⌋ (rounded down), train gets the rest. The rows are
   * shuffled with `seed` and taken in the order test, validation, train, so a split depends only on the seed,
   * n and its own fraction (and those before it): changing the train fraction never moves test rows.
   */
  split(fractions: SplitFractions, seed = 0): Splits {
    if (typeof fractions !== "object" || fractions === null)
      throw new UserError(`split: expected fractions like { train: 0.8, validation: 0.1, test: 0.1 }`);
    for (const [k, v] of Object.entries(fractions)) {
      if (!["train", "validation", "test"].includes(k))
        throw new UserError(`split: unknown split "${k}"; the splits are train, validation, test`);
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1)
        throw new UserError(`split: ${k} must be a fraction in [0, 1], got ${JSON.stringify(v)}`);
    }
    const { train = 0, validation = 0, test = 0 } = fractions;
    const sum = train + validation + test;
    if (Math.abs(sum - 1) > 1e-9)
      throw new UserError(`split: the fractions must sum to 1, got ${+sum.toFixed(6)}; subsample first with take() or filter()`);
    const n = this.length;
    const nTest = Math.floor(n * test + 1e-9);
    const nValidation = Math.floor(n * validation + 1e-9);
    const shuffled = new Random(checkSeed(seed, "split")).shuffle(this.entries);
    const part = (name: "train" | "validation" | "test", from: number, to: number) =>
      new Dataset(
        `${this.source} (${name} split)`,
        shuffled.slice(from, to),
        withStep(this.steps, { split: { fractions: { ...fractions }, seed, part: name } }),
      );
    return {
      test: part("test", 0, nTest),
      validation: part("validation", nTest, nTest + nValidation),
      train: part("train", nTest + nValidation, n),
    };
  }

  /** This dataset's rows followed by the others'. */
  concat(...others: Dataset[]): Dataset {
    const all = [this, ...others];
    all.forEach((d, i) => {
      if (!(d instanceof Dataset)) throw new UserError(`concat: argument ${i} is not a Dataset`);
    });
    const recipes = all.map((d) => d.steps);
    return new Dataset(
      all.map((d) => d.source).join(" + "),
      all.flatMap((d) => d.entries),
      recipes.every((r): r is DatasetRecipe => r !== undefined) ? { concat: recipes } : undefined,
    );
  }

  /**
   * Joins the rows' texts (field "text", separated by "\n\n") into one text and packs it as fromText() does:
   * BOS once at the start, blocks of blockSize tokens, a last block of ≥ 2 tokens kept.
   */
  pack(options: TextOptions): Dataset {
    const { field = "text", separator = "\n\n" } = options;
    const texts = this.entries.map((e) => {
      const v = e.row[field];
      if (typeof v !== "string") throw new UserError(`${e.where}: pack() needs a string "${field}", got ${describe(v)}`);
      return v;
    });
    return new Dataset(`${this.source} (packed)`, frozenBlocks(packText(texts.join(separator), this.source, options)));
  }

  // ---- to token sequences ----

  /**
   * Tokenizes every row (see rows.ts for the fields: input_ids | messages | prompt+completion | text); the first
   * bad row throws `source:line: what is wrong` before anything is trained. `tokenizer` may be undefined when
   * every row has "input_ids".
   */
  toExamples(tokenizer: Tokenizer | undefined, options: ToExamplesOptions = {}): SourcedExample[] {
    const vocabSize = options.vocabSize ?? tokenizer?.vocabSize;
    if (vocabSize === undefined)
      throw new UserError(`${this.source}: toExamples() needs a tokenizer or { vocabSize } to check the ids against`);
    const { maxLength } = options;
    if (maxLength !== undefined && !(Number.isInteger(maxLength) && maxLength > 0))
      throw new UserError(`toExamples: maxLength must be a positive integer, got ${JSON.stringify(maxLength)}`);
    return this.entries.map((e) => ({ ...convertRow(e.row, e.where, { tokenizer, vocabSize, maxLength }), source: e.where }));
  }
}

function frozenBlocks(blocks: Entry[]): Entry[] {
  return blocks.map((b) => ({ row: deepFreeze(b.row), where: b.where }));
}
