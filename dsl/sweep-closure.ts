/**
 * The closure form of sweep: `sweep(space, (cfg) => base.lora(cfg).train(ds, opts), options)`. The closure runs
 * here, one trial after another. Each finished trial is written to runs/sweeps/<name>/<key>.json, so re-running an
 * interrupted sweep trains only the missing ones. What a closure does cannot be seen, so the key holds what can:
 * the grid point (and seed), the closure's source text, the fingerprints of `options.data` and the eval data,
 * the metrics and the loralab version; reusing finished trials is said out loud, and `fresh: true` retrains.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { digestOf } from "../src/core/canonical.js";
import { check, Fields, nonEmptyString, string, boolean } from "../src/core/check.js";
import { writeFileAtomic } from "../src/core/files.js";
import { packageVersion } from "../src/core/package.js";
import { expandSpace } from "../src/study/plan.js";
import { runsDirectory } from "../src/study/registry.js";
import type { TrialRecord } from "../src/study/trial.js";
import { TRAINING_FIELDS } from "../src/train/arguments.js";
import { toDataset } from "./data.js";
import type { TrainedRun } from "./model.js";
import type { GridPoint, GridSpace } from "../src/study/plan.js";
import type { DataInput } from "./data.js";
import type { EvalMetrics, Metric } from "./model.js";
import { objectiveOf, SweepResult, sweepName } from "./sweep-result.js";

export type SweepConfig = GridPoint;
export type SweepSpace = GridSpace;

/** Options of the closure form. */
export interface SweepOptions {
  eval?: { data: DataInput; metrics?: Metric[] };
  name?: string;
  runsDir?: string | false;
  objective?: string;
  /** Each point once per seed: the closure receives it as `cfg.seed`. */
  seeds?: number[];
  /** The data the closure trains on: its fingerprint becomes part of each trial's cache key. */
  data?: DataInput;
  /** Train every trial again instead of reusing finished ones. */
  fresh?: boolean;
}

const OPTIONS = {
  eval: check("{ data, metrics? }", (v) => typeof v === "object" && v !== null && "data" in v),
  name: nonEmptyString,
  runsDir: check("a folder or false", (v) => typeof v === "string" || v === false),
  objective: string,
  seeds: check("a non-empty list of integers", (v) => Array.isArray(v) && v.length > 0 && v.every(Number.isInteger)),
  data: check("data", (v) => typeof v === "object" && v !== null),
  fresh: boolean,
};

export async function closureSweep(
  space: SweepSpace,
  train: (config: SweepConfig) => Promise<TrainedRun>,
  options: SweepOptions,
): Promise<SweepResult> {
  const fields = Fields.of("sweep options", options);
  fields.rejectUnknown(Object.keys(OPTIONS), "option");
  for (const [key, rule] of Object.entries(OPTIONS)) fields.optional(key, rule, undefined);
  const name = options.name ?? sweepName(space);
  const root = runsDirectory(options.runsDir);
  const dir = root && path.join(root, "sweeps", name);
  if (dir) fs.mkdirSync(dir, { recursive: true });
  const evaluation = options.eval;
  const seen = {
    closure: String(train),
    derived: Object.fromEntries(Object.entries(space).flatMap(([k, v]) => (typeof v === "function" ? [[k, String(v)]] : []))),
    data: options.data && toDataset(options.data, "data").fingerprint(),
    eval: evaluation && { data: toDataset(evaluation.data, "eval.data").fingerprint(), metrics: evaluation.metrics ?? ["perplexity"] },
    version: packageVersion(),
  };
  const points = expandSpace(space).flatMap((p) => (options.seeds ? options.seeds.map((seed) => ({ ...p, seed })) : [p]));
  const planned = points.map((cfg) => {
    const key = digestOf({ cfg, ...seen }, "sweep trial");
    const file = dir && path.join(dir, `${key.slice(0, 16)}.json`);
    const cached = !options.fresh && file && fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as TrialRecord) : undefined;
    return { cfg, key, file, cached };
  });
  const reused = planned.filter((p) => p.cached).length;
  if (reused)
    console.warn(
      `reusing ${reused} finished trials of sweep ${name} (the closure's effect cannot be checked; fresh: true trains them again)`,
    );
  const records: TrialRecord[] = [];
  for (const { cfg, key, file, cached } of planned) {
    if (cached) {
      records.push(cached);
      continue;
    }
    const started = performance.now();
    const run = await train(cfg);
    // The spread keeps the numbers only (an EvalResult's examples table is not enumerable).
    const scores: EvalMetrics = evaluation ? { ...(await run.model.eval(evaluation.data, evaluation.metrics ?? ["perplexity"])) } : {};
    const { tokens: _tokens, ...metrics } = scores;
    const { seed, ...config } = cfg;
    const record: TrialRecord = {
      digest: key,
      config: options.seeds ? config : cfg,
      seed: options.seeds ? (seed as number) : (run.options.seed ?? TRAINING_FIELDS.seed.default),
      status: "completed",
      trainableParams: run.trainableParams,
      allParams: run.parameters.all,
      finalLoss: run.finalLoss ?? null,
      metrics: metrics as Record<string, number>,
      wallSeconds: (performance.now() - started) / 1000,
      peakTensorMiB: run.peakTensorBytes / 2 ** 20,
      history: run.history,
      ...(run.dir ? { runId: run.id } : {}),
    };
    if (file) await writeFileAtomic(file, `${JSON.stringify(record)}\n`);
    records.push(record);
  }
  return new SweepResult(name, records, objectiveOf(evaluation, options.objective));
}
