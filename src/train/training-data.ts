/**
 * The rows a Trainer learns from: cut to the run's length, counted, and taken in a seeded order. The data is a
 * stream of epochs, each in its own order (a permutation seeded by seed + epoch, or file order), cut into
 * consecutive groups of batchSize × gradAccum rows, so step k's rows depend only on k (a resumed run sees the
 * same batches as an uninterrupted one).
 */
import { UserError } from "../core/errors.js";
import { Random } from "../core/random.js";
import type { Example } from "../data/batch.js";
import { IGNORE_INDEX } from "../models/loss.js";

export interface BatchOrder {
  batchSize: number;
  gradAccum: number;
  shuffle: boolean;
  seed: number;
}

/** Tokens that count towards the loss: each label after a row's first (token t predicts token t + 1). */
export function countedTokens(example: Example): number {
  const labels = example.labels ?? example.inputIds;
  let count = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) count++;
  return count;
}

function cutExample(e: Example, maxLength: number): Example {
  return { inputIds: e.inputIds.slice(0, maxLength), labels: e.labels?.slice(0, maxLength) };
}

/** Throws unless some row, cut to maxLength (0: not cut), has a token to train on. */
export function checkTrainingRows(rows: readonly Example[], maxLength: number): void {
  if (rows.length === 0) throw new UserError("training data is empty");
  if (rows.every((e) => countedTokens(maxLength > 0 ? cutExample(e, maxLength) : e) === 0))
    throw new UserError(
      `training data: no tokens to train on: none of the ${rows.length} rows has a token to predict after its first ` +
        "(a row of n tokens trains n − 1 predictions; prompt tokens and ignored labels do not count)",
    );
}

export class TrainingData {
  readonly examples: Example[];
  /** How many rows were longer than maxLength and were cut to it. */
  readonly cutRows: number;

  constructor(
    rows: readonly Example[],
    /** Rows are cut to this many tokens (0: not cut). */
    readonly maxLength: number,
    private readonly order: BatchOrder,
  ) {
    checkTrainingRows(rows, maxLength);
    const cut = (e: Example) => maxLength > 0 && e.inputIds.length > maxLength;
    this.cutRows = rows.filter(cut).length;
    this.examples = rows.map((e) => (cut(e) ? cutExample(e, maxLength) : e));
  }

  get length(): number {
    return this.examples.length;
  }

  /** One line for the user when rows were cut, else undefined. */
  cutNotice(): string | undefined {
    if (this.cutRows === 0) return undefined;
    return `${this.cutRows} of ${this.length} rows were longer than ${this.maxLength} tokens and were cut to ${this.maxLength}`;
  }

  /** Row indices of optimizer step `step` (0-based), one list per micro-batch. */
  rowsOfStep(step: number): number[][] {
    const n = this.examples.length;
    const { batchSize, gradAccum, shuffle, seed } = this.order;
    const start = step * batchSize * gradAccum;
    const orders = new Map<number, number[]>();
    const row = (i: number) => {
      const epoch = Math.floor(i / n);
      if (!orders.has(epoch)) {
        const identity = Array.from({ length: n }, (_, k) => k);
        orders.set(epoch, shuffle ? new Random(seed + epoch).shuffle(identity) : identity);
      }
      return orders.get(epoch)![i % n]!;
    };
    return Array.from({ length: gradAccum }, (_, m) => Array.from({ length: batchSize }, (_, b) => row(start + m * batchSize + b)));
  }

  /** Counted tokens of these rows together. */
  countedTokens(rows: readonly number[]): number {
    return rows.reduce((sum, r) => sum + countedTokens(this.examples[r]!), 0);
  }

  /** All tokens of these rows (what tokens/s counts). */
  tokens(rows: readonly number[]): number {
    return rows.reduce((sum, r) => sum + this.examples[r]!.inputIds.length, 0);
  }
}
