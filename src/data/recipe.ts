/**
 * A dataset recipe: how a Dataset was built, as plain JSON, so that another process (a worker on another
 * machine) can build the same rows without receiving them: a built-in corpus with its options or a file path,
 * then replayable steps (take, slice, shuffle, split). Rows that went through a closure (map, filter) or a
 * tokenizer (pack) cannot be described this way and travel inline as `{ rows }`.
 *
 *   { "load": "cmudict", "options": { "limit": 200 }, "steps": [{ "split": { "fractions": { "train": 0.9, "test": 0.1 }, "seed": 42, "part": "train" } }] }
 */
import { check, Fields, invalid, nonNegativeInt, oneOf, validate } from "../core/check.js";
import { notPlainData } from "../core/canonical.js";
import { UserError } from "../core/errors.js";
import type { CorpusOptions } from "./corpora.js";

export interface SplitStep {
  fractions: { train?: number; validation?: number; test?: number };
  seed: number;
  part: "train" | "validation" | "test";
}

export type RecipeStep = { take: number } | { slice: [number] | [number, number] } | { shuffle: number } | { split: SplitStep };

export type RecipeSource =
  /** A built-in corpus (with its options) or an absolute file path. */
  | { load: string; options?: CorpusOptions }
  /** The rows themselves; `name` is what errors call them. */
  | { rows: Record<string, unknown>[]; name?: string }
  | { concat: DatasetRecipe[] };

export type DatasetRecipe = RecipeSource & { steps?: RecipeStep[] };

/** `recipe` followed by one more step. */
export function withStep(recipe: DatasetRecipe | undefined, step: RecipeStep): DatasetRecipe | undefined {
  return recipe && { ...recipe, steps: [...(recipe.steps ?? []), step] };
}

const integer = check<number>("an integer", Number.isInteger);
const recipeSteps = ["take", "slice", "shuffle", "split"];

function checkStep(value: unknown, where: string, index: number): RecipeStep {
  const step = `steps[${index}]`;
  const keys = typeof value === "object" && value !== null ? Object.keys(value) : [];
  if (keys.length !== 1 || !recipeSteps.includes(keys[0]!))
    throw invalid(where, step, `one step: ${recipeSteps.map((k) => `{ ${k}: … }`).join(", ")}`, value);
  const fields = Fields.of(`${where}: ${step}`, value);
  if (fields.has("take")) return { take: fields.required("take", nonNegativeInt) };
  if (fields.has("shuffle")) return { shuffle: fields.required("shuffle", integer) };
  if (fields.has("slice")) {
    const bounds = check<[number] | [number, number]>(
      "[start] or [start, end] (integers)",
      (v) => Array.isArray(v) && (v.length === 1 || v.length === 2) && v.every(Number.isInteger),
    );
    return { slice: fields.required("slice", bounds) };
  }
  const split = Fields.of(`${where}: ${step}.split`, fields.raw.split);
  split.rejectUnknown(["fractions", "seed", "part"]);
  return {
    split: {
      fractions: split.required(
        "fractions",
        check("an object of fractions", (v) => typeof v === "object" && v !== null),
      ),
      seed: split.required("seed", integer),
      part: split.required("part", oneOf("train", "validation", "test")),
    },
  };
}

/** Checks a recipe received as JSON (every error names the field), returning it typed. */
export function checkRecipe(value: unknown, where = "data recipe"): DatasetRecipe {
  const fields = Fields.of(where, value);
  const steps = fields.optional("steps", check<unknown[]>("a list of steps", Array.isArray), []);
  const sources = ["load", "rows", "concat"].filter((k) => fields.has(k));
  if (sources.length !== 1) throw invalid(where, "load|rows|concat", "exactly one of load, rows or concat", value);
  fields.rejectUnknown(["load", "options", "rows", "name", "concat", "steps"]);
  const checkedSteps = steps.map((s, i) => checkStep(s, where, i));
  const withSteps = <T extends RecipeSource>(source: T): DatasetRecipe =>
    checkedSteps.length ? { ...source, steps: checkedSteps } : source;
  if (fields.has("load")) {
    const options = fields.optional(
      "options",
      check<CorpusOptions>("an object of corpus options", (v) => typeof v === "object"),
      undefined,
    );
    return withSteps({
      load: fields.required(
        "load",
        check<string>("a corpus name or a file path", (v) => typeof v === "string"),
      ),
      options,
    });
  }
  if (fields.has("rows")) {
    const rows = fields.required("rows", check<Record<string, unknown>[]>("a list of rows", Array.isArray));
    const why = notPlainData(rows, "rows");
    if (why) throw new UserError(`${where}: ${why}`);
    const name = fields.optional(
      "name",
      check<string>("a string", (v) => typeof v === "string"),
      undefined,
    );
    return withSteps(name === undefined ? { rows } : { rows, name });
  }
  const parts = validate(
    fields.raw.concat,
    check<unknown[]>("a non-empty list of recipes", (v) => Array.isArray(v) && v.length > 0),
    where,
    "concat",
  );
  return withSteps({ concat: parts.map((p, i) => checkRecipe(p, `${where}: concat[${i}]`)) });
}

/** A short description for tables and messages: "cmudict (limit 200) → split train", "rows (40)". */
export function describeRecipe(recipe: DatasetRecipe): string {
  const source =
    "load" in recipe
      ? `${recipe.load}${recipe.options && Object.keys(recipe.options).length ? ` ${JSON.stringify(recipe.options)}` : ""}`
      : "rows" in recipe
        ? `${recipe.rows.length} inline rows`
        : `concat of ${recipe.concat.length}`;
  const steps = (recipe.steps ?? []).map((s) => {
    const [k, v] = Object.entries(s)[0]!;
    return k === "split" ? `split ${(v as SplitStep).part} (seed ${(v as SplitStep).seed})` : `${k} ${JSON.stringify(v)}`;
  });
  return [source, ...steps].join(" → ");
}
