/** Rows of a dataset file turned into token sequences, with errors that say `file:line: field: problem`. */
import { UserError } from "../errors.js";
import type { Tokenizer } from "../tokenizer.js";
import type { Example } from "./batch.js";
import type { JsonlRow } from "./jsonl.js";

export interface RowContext {
  file: string;
  tokenizer: Tokenizer | undefined;
  vocabSize: number;
}

function fail(ctx: RowContext, row: JsonlRow, what: string): never {
  throw new UserError(`${ctx.file}:${row.line}: ${what}`);
}

function idsField(ctx: RowContext, row: JsonlRow, field: string): number[] {
  const v = row.value[field];
  if (!Array.isArray(v) || v.length === 0) fail(ctx, row, `"${field}" must be a non-empty array of token ids`);
  v.forEach((id, i) => {
    if (typeof id !== "number" || !Number.isInteger(id)) fail(ctx, row, `"${field}"[${i}] = ${JSON.stringify(id)} is not an integer token id`);
    if (id < 0 || id >= ctx.vocabSize) fail(ctx, row, `"${field}"[${i}] = ${id} is outside the vocabulary (0…${ctx.vocabSize - 1})`);
  });
  return v as number[];
}

function textField(ctx: RowContext, row: JsonlRow, field: string): string {
  const v = row.value[field];
  if (typeof v !== "string") fail(ctx, row, `"${field}" must be a string, got ${v === undefined ? "nothing" : JSON.stringify(v)}`);
  if (v.trim() === "") fail(ctx, row, `"${field}" is empty`);
  return v;
}

/** A row `{"text": …}` (tokenized, BOS as the tokenizer config says) or `{"input_ids": […]}` (used as is). */
export function rowToExample(ctx: RowContext, row: JsonlRow): Example {
  if ("input_ids" in row.value) return { inputIds: idsField(ctx, row, "input_ids") };
  if ("text" in row.value) {
    const text = textField(ctx, row, "text");
    if (!ctx.tokenizer) fail(ctx, row, `"text" needs a tokenizer, but the model directory has no tokenizer.json (use "input_ids")`);
    return { inputIds: ctx.tokenizer.encode(text) };
  }
  fail(ctx, row, `expected a "text" or "input_ids" field, found ${Object.keys(row.value).map((k) => `"${k}"`).join(", ") || "no fields"}`);
}
