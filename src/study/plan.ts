/**
 * From a grid and a study's fixed parts to its trials. A grid key is a LoRA option (`r`, `alpha`, `targets`, …),
 * a training option (`lr`, `batchSize`, …) or `seed`; each point runs once per seed.
 *
 *   planTrials({ r: [1, 2, 4], alpha: ({ r }) => 2 * r }, { model: "tiny-moby", data, train: { maxSteps: 50 }, seeds: [1, 2, 3] })
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describeValue } from "../core/check.js";
import { UserError } from "../core/errors.js";
import type { Dataset } from "../data/dataset.js";
import { LORA_FIELDS, type LoraConfigInput } from "../lora/config.js";
import { TRAINING_FIELD_NAMES, type TrainingOptions } from "../train/arguments.js";
import { makeTrial, type TrialSpec } from "./trial.js";

/**
 * Keys with a list of values span the grid; keys with a function derive their value from a point
 * (`alpha: ({ r }) => 2 * r`). Points are loosely typed so that such functions need no annotations in notebooks.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type GridPoint = Record<string, any>;
export type GridSpace = Record<string, readonly unknown[] | ((point: GridPoint) => unknown)>;

/** The grid: every combination of the list-valued keys, then the function-valued keys derived from each. */
export function expandSpace(space: GridSpace): GridPoint[] {
  if (typeof space !== "object" || space === null || Array.isArray(space))
    throw new UserError(`sweep: expected a space like { r: [1, 2, 4] }, got ${describeValue(space)}`);
  let points: GridPoint[] = [{}];
  for (const [key, values] of Object.entries(space)) {
    if (typeof values === "function") continue;
    if (!Array.isArray(values) || values.length === 0)
      throw new UserError(
        `sweep: space key "${key}": expected a non-empty list of values or a function of the point, got ${describeValue(values)}`,
      );
    points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  }
  return points.map((p) => {
    const out = { ...p };
    for (const [key, f] of Object.entries(space)) if (typeof f === "function") out[key] = f(out);
    return out;
  });
}

/** What every trial of a study shares. */
export interface StudyDefinition {
  /** A shipped model's name, a model directory or a hub id. */
  model: string;
  data: Dataset;
  /** LoRA options of every trial (grid keys override them). */
  lora?: LoraConfigInput;
  /** Training options of every trial (grid keys override them). */
  train?: TrainingOptions;
  eval?: { data: Dataset; metrics?: readonly string[] };
  /** Each configuration runs once per seed (default: the training seed, 42 unless given). */
  seeds?: readonly number[];
}

const LORA_KEYS = new Set(Object.entries(LORA_FIELDS).flatMap(([name, f]) => [name, ...("short" in f && f.short ? [f.short] : [])]));
const TRAIN_KEYS = new Set<string>(TRAINING_FIELD_NAMES);

/** A model directory becomes absolute (a worker may start elsewhere); names and hub ids stay as they are. */
export function modelReference(ref: string): string {
  return typeof ref === "string" && fs.existsSync(ref) && fs.statSync(ref).isDirectory() ? path.resolve(ref) : ref;
}

function seedsOf(space: GridSpace, definition: StudyDefinition, where: string): readonly (number | undefined)[] {
  const { seeds, train = {} } = definition;
  if ("seed" in space && (seeds !== undefined || train.seed !== undefined))
    throw new UserError(`${where}: the seed is a key of the space; drop seeds and train.seed`);
  if (seeds !== undefined && train.seed !== undefined) throw new UserError(`${where}: give seeds or train.seed, not both`);
  if (seeds !== undefined && (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every(Number.isInteger)))
    throw new UserError(`${where}: seeds: expected a non-empty list of integers, got ${describeValue(seeds)}`);
  return "seed" in space ? [undefined] : (seeds ?? [train.seed ?? 42]);
}

/** One trial per grid point and seed, each checked (see makeTrial) before anything runs. */
export function planTrials(space: GridSpace, definition: StudyDefinition, where = "sweep"): TrialSpec[] {
  const seeds = seedsOf(space, definition, where);
  const { seed: _seed, ...train } = definition.train ?? {};
  const trials: TrialSpec[] = [];
  for (const point of expandSpace(space)) {
    const { seed: pointSeed, ...config } = point;
    const lora: Record<string, unknown> = { ...definition.lora };
    const options: Record<string, unknown> = { ...train };
    for (const [key, value] of Object.entries(config)) {
      if (LORA_KEYS.has(key)) lora[key] = value;
      else if (TRAIN_KEYS.has(key)) options[key] = value;
      else
        throw new UserError(
          `${where}: space key "${key}" is neither a LoRA option (${[...LORA_KEYS].join(", ")}) nor a training option (${[...TRAIN_KEYS].join(", ")}) nor "seed"`,
        );
    }
    for (const seed of seeds) {
      trials.push(
        makeTrial({
          config,
          model: modelReference(definition.model),
          data: definition.data,
          lora,
          train: options,
          eval: definition.eval && { data: definition.eval.data, metrics: definition.eval.metrics ?? ["perplexity"] },
          seed: (seed ?? pointSeed) as number,
        }),
      );
    }
  }
  return trials;
}
