/**
 * sweep: train one configuration per point of a grid (and per seed), evaluate each, and tabulate with statistics.
 *
 * Declarative (every trial is plain data; runs here, in local worker processes, or on queue workers):
 *
 *   sweep({ r: [1, 2, 4, 8], alpha: ({ r }) => 2 * r }, { model: base, data: train, train: { maxSteps: 100 },
 *         eval: { data: test }, seeds: [1, 2, 3], parallel: 2 })            // or queue: "redis://host:6379/0"
 *
 * With a closure (always in this process, one trial after another):
 *
 *   sweep({ r: [1, 2, 4, 8] }, (cfg) => base.lora(cfg).train(ds, opts), { eval: { data: test } })
 */
import { toDataset, type DataInput } from "./data.js";
import { Model, type Metric, type TrainedRun } from "./model.js";
import { kernelSignal } from "../src/runtime/kernel.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import type { TrainingOptions } from "../src/train/arguments.js";
import { UserError } from "../src/core/errors.js";
import { check, Fields, nonEmptyString, nonNegativeNumber, positiveInt, string, boolean } from "../src/core/check.js";
import { inlineExecutor, type Executor } from "../src/study/executor.js";
import { ModelPool } from "../src/study/model-pool.js";
import { expandSpace, planTrials } from "../src/study/plan.js";
import { processExecutor } from "../src/study/processes.js";
import { queueExecutor } from "../src/study/queue.js";
import { runStudy } from "../src/study/study.js";
import { closureSweep, type SweepConfig, type SweepOptions, type SweepSpace } from "./sweep-closure.js";
import { SweepProgress } from "./sweep-progress.js";
import { objectiveOf, SweepResult, sweepName } from "./sweep-result.js";

export { expandSpace };

/** A declarative sweep: what every trial shares, and where the trials run. */
export interface SweepStudy {
  /** The base model: a loaded model(), a shipped model's name, a model directory or a hub id. */
  model: Model | string;
  data: DataInput;
  /** LoRA options of every trial (grid keys override them). */
  lora?: LoraConfigInput;
  /** Training options of every trial (grid keys override them). */
  train?: TrainingOptions;
  eval?: { data: DataInput; metrics?: Metric[] };
  /** Each configuration once per seed (or put `seed` in the space). */
  seeds?: number[];
  /** Trials at once in worker processes on this machine (default: one at a time, in this process). */
  parallel?: number;
  /** A Redis URL: trials become BullMQ jobs for `loralab worker`s (default: LORALAB_QUEUE, if set). */
  queue?: string;
  /** Names the sweep (default: derived from the space). */
  name?: string;
  runsDir?: string | false;
  /** Train every trial again, even those the registry holds. */
  fresh?: boolean;
  /** The measure `best` and the chart use (default: the first eval metric, else the final loss). */
  objective?: string;
  /** In the kernel: seconds between progress updates (default 2; 0 = off). */
  liveEvery?: number;
  signal?: AbortSignal;
}

const STUDY_OPTIONS = {
  model: check("a model() or a model name", (v) => typeof v === "string" || v instanceof Model),
  data: check("data", (v) => typeof v === "object" && v !== null),
  lora: check("an object of LoRA options", (v) => typeof v === "object"),
  train: check("an object of training options", (v) => typeof v === "object"),
  eval: check("{ data, metrics? }", (v) => typeof v === "object" && v !== null && "data" in v),
  seeds: check("a list of integers", (v) => Array.isArray(v)),
  parallel: positiveInt,
  queue: nonEmptyString,
  name: nonEmptyString,
  runsDir: check("a folder or false", (v) => typeof v === "string" || v === false),
  fresh: boolean,
  objective: string,
  liveEvery: nonNegativeNumber,
  signal: check("an AbortSignal", (v) => v instanceof AbortSignal),
};

function executorFor(study: SweepStudy, base: Model | undefined): Executor {
  const queue = study.queue ?? (process.env.LORALAB_QUEUE || undefined);
  if (queue !== undefined && study.parallel !== undefined) throw new UserError("sweep: give queue or parallel, not both");
  if (queue !== undefined) return queueExecutor(queue, { fresh: study.fresh });
  if (study.parallel !== undefined) return processExecutor(study.parallel);
  // In this process, trials train on the loaded model the user passed (no second copy).
  return inlineExecutor(
    new ModelPool(undefined, (ref) => (base && ref === base.ref ? { loaded: base.loaded, peft: base.peftModel() } : undefined)),
  );
}

async function declarativeSweep(space: SweepSpace, study: SweepStudy): Promise<SweepResult> {
  const fields = Fields.of("sweep", study);
  fields.rejectUnknown(Object.keys(STUDY_OPTIONS), "option");
  for (const [key, rule] of Object.entries(STUDY_OPTIONS)) fields.optional(key, rule, undefined);
  fields.required("model", STUDY_OPTIONS.model);
  fields.required("data", STUDY_OPTIONS.data);
  const base = study.model instanceof Model ? study.model : undefined;
  const name = study.name ?? sweepName(space);
  const trials = planTrials(space, {
    model: base ? base.ref : (study.model as string),
    data: toDataset(study.data, "data"),
    lora: study.lora,
    train: study.train,
    eval: study.eval && { data: toDataset(study.eval.data, "eval.data"), metrics: study.eval.metrics },
    seeds: study.seeds,
  });
  const executor = executorFor(study, base);
  const progress = new SweepProgress(name, executor.description, trials, study.liveEvery ?? 2);
  try {
    const records = await runStudy(trials, {
      name,
      executor,
      runsDir: study.runsDir,
      fresh: study.fresh,
      signal: study.signal ?? kernelSignal(),
      onEvent: (e) => progress.on(e),
    });
    return new SweepResult(name, records, objectiveOf(study.eval, study.objective));
  } finally {
    progress.finish();
  }
}

export async function sweep(space: SweepSpace, study: SweepStudy): Promise<SweepResult>;
export async function sweep(
  space: SweepSpace,
  train: (config: SweepConfig) => Promise<TrainedRun>,
  options?: SweepOptions,
): Promise<SweepResult>;
export async function sweep(
  space: SweepSpace,
  trainOrStudy: SweepStudy | ((config: SweepConfig) => Promise<TrainedRun>),
  options: SweepOptions = {},
): Promise<SweepResult> {
  if (typeof trainOrStudy === "function") return closureSweep(space, trainOrStudy, options);
  return declarativeSweep(space, trainOrStudy);
}

export { SweepResult, type SweepConfig, type SweepOptions, type SweepSpace };
