/**
 * A training run: its configuration, the live history of every logged step, evaluations, the
 * trained model, and its folder in the run registry (src/study/run-folder.ts: config.json, data.json,
 * metrics.jsonl, the adapter in PEFT format, summary.json, and checkpoints while it trains).
 */
import { inspect } from "node:util";
import * as path from "node:path";
import * as aq from "arquero";
import { tf } from "../src/backend/index.js";
import { check, Fields, nonEmptyString, nonNegativeNumber, string } from "../src/core/check.js";
import { UserError } from "../src/core/errors.js";
import type { LoadedModel } from "../src/models/load.js";
import { type ParameterSummary, type StoredWeight, trainableSummary } from "../src/nn/module.js";
import { type MemoryReport, memoryReport } from "../src/train/run-memory.js";
import {
  pickTrainingOptions,
  type ResolvedTrainingOptions,
  resolveTrainingOptions,
  type TrainingFieldName,
  type TrainingOptions,
} from "../src/train/arguments.js";
import type { Trainable } from "../src/train/trainable.js";
import { Trainer, type EvalLog, type StepLog, type TrainResult } from "../src/train/trainer.js";
import { checkTrainingRows } from "../src/train/training-data.js";
import { type DataInput, toDataset, toExamples } from "./data.js";
import { newRunId, runsDirectory } from "../src/study/registry.js";
import { currentOwner, RunFolder } from "../src/study/run-folder.js";
import { dataRef, type DataRef } from "../src/study/trial.js";
import { ERROR_KIND, type ErrorKind, kernelSignal } from "../src/runtime/kernel.js";
import { LiveProgress } from "./live-progress.js";
import { displayedText, htmlKeyValues, lossChart, runRows, textKeyValues } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";

/** The training options of src/train/arguments.ts, plus what belongs to a run in the DSL. */
export interface TrainOptions extends TrainingOptions {
  /** Evaluated (perplexity) every evalSteps steps and at the end. */
  evalData?: DataInput;
  /** Trainer checkpoints go here (default: the run's registry folder). */
  outputDir?: string;
  signal?: AbortSignal;
  /** Called after every step. */
  onStep?: (log: StepLog, run: Run) => void;
  /** In the loralab kernel: seconds between updates of the live progress line and loss curve (default 2; 0 = off). */
  liveEvery?: number;
  /** Registry folder (default "runs", or LORALAB_RUNS_DIR); false = do not record the run. */
  runsDir?: string | false;
  /** A readable run name (part of its id). */
  name?: string;
}

/** The DSL's own options and their checks (the training options are checked by resolveTrainingOptions). */
const RUN_OPTIONS = {
  evalData: check("data", (v) => v !== null && typeof v === "object"),
  outputDir: string,
  signal: check("an AbortSignal", (v) => v instanceof AbortSignal),
  onStep: check("a function", (v) => typeof v === "function"),
  liveEvery: nonNegativeNumber,
  runsDir: check("a folder or false", (v) => typeof v === "string" || v === false),
  name: nonEmptyString,
} satisfies Record<Exclude<keyof TrainOptions, TrainingFieldName>, unknown>;

const WHERE = "train options";

/** What a run needs from the base model its model was made from. */
export interface RunBase {
  readonly ref: string;
  readonly loaded: LoadedModel;
}

/** What a run needs from the model it trains; LoraModel and FullModel implement it. */
export interface TrainedModel {
  /** "lora" or "full", recorded in the run's config.json and summary.json. */
  readonly kind: string;
  /** The series name in charts: "LoRA r=8", "full". */
  readonly label: string;
  readonly base: RunBase;
  /** What the Trainer updates (called once per run). */
  trainable(seed: number): Trainable;
  /** Makes this model's weights the ones training updates (another run on the same base may have taken over). */
  selectForTraining(): void;
  /** Every parameter this model computes with (for LoRA: the base's and its own adapter's). */
  namedParameters(): Iterable<[string, tf.Variable]>;
  /** Its compact frozen weights (QLoRA's NF4 projections), not among the parameters. */
  namedStoredWeights(): Iterable<[string, StoredWeight]>;
  /** What config.json records about the model, e.g. { lora: {...} }. */
  recordedConfig(): Record<string, unknown>;
  /** Saves into the run's folder what the registry keeps of the model (LoRA: the adapter). */
  saveToRun(dir: string): Promise<void>;
  /** Frees what creating it allocated (the adapter, the weight copy), when its run cannot start. */
  discard(): void;
  describe(): [string, unknown][];
}

/** Thrown when a run stops before its last step (interrupt or abort); `run` keeps its history and can resume. */
export class TrainingInterrupted extends Error {
  override name = "TrainingInterrupted";
  readonly [ERROR_KIND]: ErrorKind = "interrupt";
  constructor(readonly run: Run) {
    super(
      `training interrupted at step ${run.step}/${run.totalSteps}; the run keeps its history (error.run or lastRun()), and run.resume() continues it`,
    );
  }
}

let last: Run | undefined;

/** The most recent run started in this process (also after an interrupt). */
export function lastRun(): Run | undefined {
  return last;
}

export { runsDirectory };

const count = (n: number) => n.toLocaleString("en-US");

/**
 * A recorded run checkpoints every REGISTRY_SAVE_STEPS steps unless told otherwise, keeping only the newest
 * checkpoint and none once it completes: a killed run resumes from at most that many steps back
 * (loadRun(id).resume()). A LoRA checkpoint is the adapter plus its AdamW moments, small beside a step's work.
 */
export const REGISTRY_SAVE_STEPS = 10;

/** A recorded run taken up again (loadRun(id).resume()): its folder, and where training continues from. */
export interface Reopened {
  folder: RunFolder;
  checkpoint: { dir: string; step: number } | undefined;
  started: string;
}

/** What data.json records: the data's recipes, so that the run can be resumed or repeated elsewhere. */
function dataRecord(data: DataInput, evalData: DataInput | undefined): { train: DataRef; eval?: DataRef } | undefined {
  try {
    const train = dataRef(toDataset(data, "data"));
    return evalData ? { train, eval: dataRef(toDataset(evalData, "evalData")) } : { train };
  } catch {
    return undefined; // data of another kind: the run is recorded, but cannot be resumed from the registry
  }
}

export class Run<M extends TrainedModel = TrainedModel> {
  private result: TrainResult | undefined;
  private started = new Date();
  /** The default checkpoints (REGISTRY_SAVE_STEPS) are this run's to prune and remove. */
  private ownCheckpoints = false;

  private constructor(
    readonly id: string,
    private readonly folder: RunFolder | undefined,
    readonly model: M,
    readonly options: TrainOptions,
    private readonly trainer: Trainer,
    /** Trainable and all parameters of the model when training started (PEFT's print_trainable_parameters). */
    readonly parameters: ParameterSummary,
  ) {}

  /** Checks the options and the data, then creates the model (so a bad input leaves nothing behind) and trains it. */
  static async start<M extends TrainedModel>(
    base: RunBase,
    create: (seed: number) => M,
    data: DataInput,
    options: TrainOptions = {},
    reopened?: Reopened,
  ): Promise<Run<M>> {
    const { tokenizer, config } = base.loaded;
    const fields = Fields.of(WHERE, options);
    for (const [key, rule] of Object.entries(RUN_OPTIONS)) fields.optional(key, rule, undefined);
    const resolved = resolveTrainingOptions(options, { where: WHERE, otherKeys: Object.keys(RUN_OPTIONS) }, config.maxPositions);
    const examples = toExamples(data, tokenizer, config.vocabSize);
    checkTrainingRows(examples, resolved.maxLength);
    const evalData = options.evalData ? toExamples(options.evalData, tokenizer, config.vocabSize) : undefined;

    const model = create(resolved.seed);
    const root = runsDirectory(options.runsDir);
    const folder = reopened?.folder ?? (root ? new RunFolder(path.join(root, newRunId(options.name ?? model.kind))) : undefined);
    const ownCheckpoints = folder !== undefined && options.saveStrategy === undefined && options.outputDir === undefined;
    let trainer: Trainer;
    try {
      trainer = new Trainer(model.trainable(resolved.seed), examples, {
        ...(ownCheckpoints ? { saveStrategy: "steps", saveSteps: REGISTRY_SAVE_STEPS } : {}),
        ...pickTrainingOptions(options),
        evalData,
        outputDir: options.outputDir ?? folder?.checkpointsDir,
        // In the kernel an interrupt aborts the cell's signal: training stops at the next step boundary.
        signal: options.signal ?? kernelSignal(),
        measureMemory: true,
      });
    } catch (e) {
      model.discard(); // e.g. a step the backend cannot hold: the refused call leaves no adapter or copy behind
      throw e;
    }
    const parameters = trainableSummary(model.namedParameters(), model.namedStoredWeights());
    const run = new Run(folder?.id ?? newRunId(undefined), folder, model, options, trainer, parameters);
    run.ownCheckpoints = ownCheckpoints;
    const notice = trainer.data.cutNotice();
    if (notice) console.warn(`${run.label}: ${notice}`);
    last = run;
    if (reopened) await run.takeUp(reopened);
    else await run.recordStart(data, options.evalData);
    return run.continue();
  }

  /** The training options this run used, every default filled in. */
  get trainingOptions(): ResolvedTrainingOptions {
    return this.trainer.options;
  }

  /** The run's folder in the registry, if it is recorded. */
  get dir(): string | undefined {
    return this.folder?.dir;
  }

  get kind(): string {
    return this.model.kind;
  }

  get step(): number {
    return this.trainer.step;
  }

  get totalSteps(): number {
    return this.trainer.totalSteps;
  }

  get history(): StepLog[] {
    return this.trainer.history;
  }

  get evals(): EvalLog[] {
    return this.result?.evals ?? [];
  }

  get status(): "running" | TrainResult["reason"] {
    return this.result?.reason ?? "running";
  }

  get finalLoss(): number | undefined {
    return this.history.at(-1)?.loss;
  }

  get trainableParams(): number {
    return this.parameters.trainable;
  }

  /**
   * Tensor memory this run needs at its peak: the float32 weights it computes with, its optimizer moments and the
   * most a step added on top (activations, gradients; measured with tf.profile). Other runs' tensors do not count.
   */
  get peakTensorBytes(): number {
    return this.memory.peakTensorBytes;
  }

  /** Measured memory: weights by storage format, optimizer state, the activation peak of a step, process RSS. */
  get memory(): MemoryReport {
    return memoryReport(this.model, this.trainer.optimizer, this.history);
  }

  /** Continues an interrupted run from its last completed step. */
  async resume(options: { signal?: AbortSignal } = {}): Promise<Run<M>> {
    if (this.status === "completed") return this;
    this.trainer.setSignal(options.signal ?? kernelSignal());
    return this.continue();
  }

  private async continue(): Promise<Run<M>> {
    const live = new LiveProgress(this, this.options.liveEvery ?? 2);
    const off = this.trainer.on((e) => {
      if (e.type === "step") {
        this.folder?.appendMetrics(e.log);
        this.options.onStep?.(e.log, this);
        live.step();
      }
      if (e.type === "save" && this.ownCheckpoints) this.folder?.pruneCheckpoints(1);
    });
    try {
      this.model.selectForTraining();
      this.result = await this.trainer.train();
    } finally {
      off();
      live.finish();
    }
    await this.record();
    if (this.result.reason === "diverged") throw new UserError(`training diverged: ${this.result.message}`);
    if (this.result.reason === "cancelled") throw new TrainingInterrupted(this);
    return this;
  }

  summary(): Record<string, unknown> {
    return {
      id: this.id,
      kind: this.kind,
      status: this.status,
      steps: this.step,
      total_steps: this.totalSteps,
      final_loss: this.finalLoss ?? null,
      trainable_params: this.parameters.trainable,
      all_params: this.parameters.all,
      evals: this.evals,
      started: this.started.toISOString(),
      elapsed_seconds: this.history.at(-1)?.elapsedSeconds ?? 0,
      peak_tensor_bytes: this.peakTensorBytes,
    };
  }

  /**
   * A new run's folder: config.json (what trains: `train` as resolved, `options` as given, for resume), data.json
   * (the data's recipes) and summary.json naming this process as the owner.
   */
  private async recordStart(data: DataInput, evalData: DataInput | undefined): Promise<void> {
    if (!this.folder) return;
    await this.folder.writeJson("config.json", {
      kind: this.kind,
      base: this.model.base.ref,
      ...this.model.recordedConfig(),
      train: this.trainer.options,
      options: pickTrainingOptions(this.options),
      ...(this.options.name ? { name: this.options.name } : {}),
      ...(this.options.outputDir ? { checkpointDir: path.resolve(this.options.outputDir) } : {}),
    });
    const recipes = dataRecord(data, evalData);
    if (recipes) await this.folder.writeJson("data.json", recipes);
    await this.record();
  }

  /** Continues a recorded run: from its checkpoint (its logged steps after that are dropped), else from the start. */
  private async takeUp({ folder, checkpoint, started }: Reopened): Promise<void> {
    this.started = new Date(started);
    if (checkpoint) await this.trainer.resumeFrom(checkpoint.dir);
    await folder.writeMetrics(this.history);
    await this.record();
  }

  /** Writes summary.json and (when there are steps) what the model keeps; a completed run's own checkpoints go. */
  private async record(): Promise<void> {
    if (!this.folder) return;
    if (this.step > 0) await this.model.saveToRun(this.folder.dir);
    if (this.status === "completed" && this.ownCheckpoints) this.folder.removeCheckpoints();
    await this.folder.writeJson("summary.json", { ...this.summary(), owner: currentOwner() });
  }

  /** Every logged step as an arquero table. */
  table(): aq.ColumnTable {
    return aq.from(this.history);
  }

  /** "LoRA r=8" or "full" (or the run's name): the series name in charts. */
  get label(): string {
    return this.options.name ?? this.model.label;
  }

  /** The loss curve as a vega-lite spec. */
  chart(): Record<string, unknown> {
    return lossChart(this.history.map((h) => ({ step: h.step, loss: h.loss, series: this.label })));
  }

  [inspect.custom](): string {
    return displayedText(this);
  }

  [DISPLAY](): MimeBundle {
    const rows: [string, unknown][] = [
      ...runRows(this.id, this.status, `${this.step}/${this.totalSteps}`, this.finalLoss),
      ["trainable params", `${count(this.parameters.trainable)} of ${count(this.parameters.all)} (${this.parameters.percent.toFixed(4)}%)`],
      ...this.model.describe(),
    ];
    return {
      "text/plain": textKeyValues("Run", rows),
      "text/html": htmlKeyValues("Run", rows),
      "application/vnd.vegalite.v5+json": this.chart(),
    };
  }
}
