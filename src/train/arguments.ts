/**
 * Training arguments: every option of a training run in one table, TRAINING_FIELDS (names and defaults follow
 * transformers' TrainingArguments where the two share a field). The Trainer, the DSL's train options and the
 * `loralab train` flags all derive from it: a field's rule validates it, its default fills it in, its flag and doc
 * describe it. Adding an option is one entry here (plus its use in the Trainer).
 */
import {
  boolean,
  type Check,
  check,
  Fields,
  invalid,
  nonNegativeInt,
  nonNegativeNumber,
  numberIn,
  oneOf,
  positiveInt,
  positiveNumber,
  validate,
} from "../core/check.js";
import { type WorkersOption, workersCheck } from "./parallelism.js";
import { SCHEDULES } from "./schedule.js";

/** How a flag's text becomes the field's value: a number, the text itself, a `--x`/`--no-x` pair, or "a,b" numbers. */
export type FlagType = "number" | "text" | "switch" | "numbers";

export interface TrainingField<T, D extends T | undefined = T | undefined> {
  readonly rule: Check<T>;
  /** The value when the option is not given (undefined: derived, see `doc`). */
  readonly default: D;
  /** The `loralab train` flag, without "--". */
  readonly flag: string;
  readonly flagType: FlagType;
  /** One line for `loralab train --help` and the README. */
  readonly doc: string;
}

function field<T, D extends T | undefined>(
  rule: Check<T>,
  fallback: D,
  flag: string,
  flagType: FlagType,
  doc: string,
): TrainingField<T, D> {
  return { rule, default: fallback, flag, flagType, doc };
}

const integer: Check<number> = check("an integer", (v) => Number.isInteger(v));
const betas: Check<[number, number]> = check(
  "two numbers in [0, 1)",
  (v) => Array.isArray(v) && v.length === 2 && v.every((b) => numberIn(0, 1, { maxOpen: true }).accepts(b)),
);

/** A number flag's value: the number, or the word as typed ("auto") for a rule that takes words too. */
export function flagNumber(text: string): number | string {
  if (text.trim() === "") return NaN;
  const n = Number(text);
  return Number.isNaN(n) && /^[a-z]+$/.test(text) ? text : n;
}

export const TRAINING_FIELDS = {
  // AdamW moves each weight by about lr per step, so a rate above 1 only destroys the model.
  lr: field(numberIn(0, 1, { minOpen: true }), 2e-4, "lr", "number", "peak learning rate"),
  batchSize: field(positiveInt, 8, "batch", "number", "sequences per micro-batch"),
  gradAccum: field(positiveInt, 1, "grad-accum", "number", "micro-batches per optimizer step"),
  epochs: field(positiveNumber, 1, "epochs", "number", "passes over the data (unless a step count is given)"),
  maxSteps: field(positiveInt, undefined, "steps", "number", "optimizer steps (instead of epochs)"),
  warmupSteps: field(nonNegativeInt, undefined, "warmup", "number", "steps of linear warmup (default: the warmup ratio of all steps)"),
  warmupRatio: field(numberIn(0, 1), 0, "warmup-ratio", "number", "warmup as a fraction of all steps"),
  schedule: field(oneOf(...SCHEDULES), "linear", "schedule", "text", "learning rate after warmup: constant, linear or cosine decay"),
  weightDecay: field(numberIn(0, 1), 0, "weight-decay", "number", "decoupled weight decay (biases and norm weights exempt)"),
  maxGradNorm: field(nonNegativeNumber, 1, "max-grad-norm", "number", "clip the global gradient norm to this (0: off)"),
  betas: field(betas, [0.9, 0.999], "betas", "numbers", "AdamW's β₁,β₂"),
  eps: field(positiveNumber, 1e-8, "eps", "number", "AdamW's ε"),
  maxLength: field(positiveInt, undefined, "seq", "number", "cut rows to this many tokens (default and at most: the model's context)"),
  gradientCheckpointing: field(
    boolean,
    false,
    "gradient-checkpointing",
    "switch",
    "keep only each decoder layer's input for the backward pass and recompute the rest (less memory, one more forward)",
  ),
  seed: field(integer, 42, "seed", "number", "seed of the data order and of a new adapter's initialisation and dropout"),
  shuffle: field(boolean, true, "shuffle", "switch", "reshuffle the rows every epoch (off: file order, wrapping around)"),
  evalSteps: field(nonNegativeInt, 0, "eval-steps", "number", "evaluate on the eval data every N steps (0: at the end only)"),
  saveStrategy: field(oneOf("no", "epoch", "steps"), "no", "save-strategy", "text", "when to write checkpoints: no, epoch or steps"),
  saveSteps: field(positiveInt, 500, "save-steps", "number", 'steps between checkpoints (save strategy "steps")'),
  workers: field(
    workersCheck,
    "auto" as WorkersOption,
    "workers",
    "number",
    'threads computing shares of every batch\'s rows (1: this thread alone; "auto": the cores, when the steps are long enough)',
  ),
};

export type TrainingFieldName = keyof typeof TRAINING_FIELDS;
export const TRAINING_FIELD_NAMES = Object.keys(TRAINING_FIELDS) as TrainingFieldName[];

type ValueOf<F> = F extends TrainingField<infer T> ? T : never;

/** What a user sets: every field optional. */
export type TrainingOptions = { [K in TrainingFieldName]?: ValueOf<(typeof TRAINING_FIELDS)[K]> };

/** Every field filled in; those without a default stay optional. */
export type ResolvedTrainingOptions = {
  [K in TrainingFieldName]: (typeof TRAINING_FIELDS)[K] extends TrainingField<infer T, infer D>
    ? undefined extends D
      ? T | undefined
      : T
    : never;
} & { maxLength: number };

/** Pairs of fields where giving one makes the other meaningless (transformers silently prefers the first). */
const EXCLUSIVE: [TrainingFieldName, TrainingFieldName][] = [
  ["maxSteps", "epochs"],
  ["warmupSteps", "warmupRatio"],
];

export interface Naming {
  /** What the options are, as messages say it: "train options", "training arguments", "" for CLI flags. */
  where: string;
  /** A field's name in messages (the CLI says "--seq" for maxLength). */
  nameOf?: (field: TrainingFieldName) => string;
  /** Keys the caller accepts beside the table's (e.g. the DSL's `runsDir`). */
  otherKeys?: readonly string[];
}

/**
 * Validates `input` and fills in defaults. With `context` (the model's positions), maxLength defaults to it and
 * may not exceed it; without, it stays as given (0 when not given).
 */
export function resolveTrainingOptions(input: unknown, naming: Naming, context?: number): ResolvedTrainingOptions {
  const { where, nameOf = (f) => f, otherKeys = [] } = naming;
  const fields = Fields.of(where || "options", input ?? {});
  fields.rejectUnknown([...TRAINING_FIELD_NAMES, ...otherKeys], "option");
  const resolved: Record<string, unknown> = {};
  for (const name of TRAINING_FIELD_NAMES) {
    const { rule, default: fallback } = TRAINING_FIELDS[name];
    const value = fields.raw[name];
    resolved[name] = value === undefined ? fallback : validate(value, rule as Check<unknown>, where, nameOf(name));
  }
  for (const [first, second] of EXCLUSIVE) {
    if (fields.has(first) && fields.has(second))
      throw invalid(where, nameOf(second), `no value when ${nameOf(first)} is given`, fields.raw[second]);
  }
  const maxLength = resolved.maxLength as number | undefined;
  if (context !== undefined && maxLength !== undefined && maxLength > context)
    throw invalid(where, nameOf("maxLength"), `at most the model's context (${context} tokens)`, maxLength);
  resolved.maxLength = maxLength ?? context ?? 0;
  return resolved as ResolvedTrainingOptions;
}

/** The table's fields of `input` (a face's options may hold more). */
export function pickTrainingOptions(input: object): TrainingOptions {
  const values = input as Record<string, unknown>;
  return Object.fromEntries(TRAINING_FIELD_NAMES.filter((k) => values[k] !== undefined).map((k) => [k, values[k]]));
}
