/**
 * A training run: its configuration, the live history of every logged step, evaluations, the
 * trained model, and its folder in the run registry (runs/<id>/ with config.json, metrics.jsonl,
 * the adapter in PEFT format and summary.json).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import * as aq from "arquero";
import { tf } from "../src/backend/index.js";
import { UserError } from "../src/core/errors.js";
import { writeFileAtomic } from "../src/core/files.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../src/train/trainable.js";
import { Trainer, type EvalLog, type StepLog, type TrainResult, type TrainingArguments } from "../src/train/trainer.js";
import type { ScheduleName } from "../src/train/schedule.js";
import { type DataInput, toExamples } from "./data.js";
import { ERROR_KIND, type ErrorKind, kernelDisplay, kernelSignal, type KernelDisplayHandle } from "../src/runtime/kernel.js";
import { htmlKeyValues, lossChart, textKeyValues } from "./presentation.js";
import { DISPLAY, escapeHtml, type MimeBundle } from "../src/runtime/display.js";
import type { FullModel, LoraModel, Model } from "./model.js";

export interface TrainOptions {
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradAccum?: number;
  /** Warmup steps. */
  warmup?: number;
  warmupRatio?: number;
  lr?: number;
  schedule?: ScheduleName;
  weightDecay?: number;
  maxGradNorm?: number;
  seed?: number;
  shuffle?: boolean;
  /** Truncate examples to this many tokens. */
  maxLength?: number;
  evalData?: DataInput;
  evalSteps?: number;
  saveStrategy?: "no" | "epoch" | "steps";
  saveSteps?: number;
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

export function runsDirectory(option?: string | false): string | undefined {
  if (option === false) return undefined;
  return path.resolve(option ?? process.env.LORALAB_RUNS_DIR ?? "runs");
}

function newRunId(name: string | undefined): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  return `${stamp}-${name ? `${name.replace(/[^A-Za-z0-9_-]+/g, "_")}-` : ""}${randomBytes(3).toString("hex")}`;
}

interface StartArgs {
  kind: "lora" | "full";
  base: Model;
  model: LoraModel | FullModel;
  config: LoraConfigInput;
  data: DataInput;
  options: TrainOptions;
}

export class Run {
  private result: TrainResult | undefined;
  private readonly started = new Date();
  /**
   * Tensor memory this run needs, measured at step boundaries: the weights it computes with plus the
   * most that training added on top (optimizer moments, adapters). Other runs' tensors do not count.
   * (The transient peak inside a step, activations and gradients, is what `loralab bench --mode train` measures.)
   */
  peakTensorBytes = 0;
  private startBytes: number | undefined;

  private constructor(
    readonly id: string,
    readonly dir: string | undefined,
    readonly kind: "lora" | "full",
    readonly model: LoraModel | FullModel,
    readonly config: LoraConfigInput,
    readonly options: TrainOptions,
    private readonly trainer: Trainer,
  ) {}

  static async start({ kind, base, model, config, data, options }: StartArgs): Promise<Run> {
    const loaded = base.loaded;
    const examples = toExamples(data, loaded.tokenizer, loaded.config.vocabSize);
    const evalData = options.evalData ? toExamples(options.evalData, loaded.tokenizer, loaded.config.vocabSize) : undefined;
    const trainable: Trainable =
      kind === "lora"
        ? new LoraTrainable(activate(model as LoraModel))
        : new FullTrainable((model as FullModel).weights, options.seed ?? 42);
    const args: TrainingArguments = {
      epochs: options.epochs,
      maxSteps: options.maxSteps,
      batchSize: options.batchSize,
      gradAccum: options.gradAccum,
      warmupSteps: options.warmup,
      warmupRatio: options.warmupRatio,
      lr: options.lr,
      schedule: options.schedule,
      weightDecay: options.weightDecay,
      maxGradNorm: options.maxGradNorm,
      seed: options.seed,
      shuffle: options.shuffle,
      maxLength: options.maxLength,
      evalData,
      evalSteps: options.evalSteps,
      saveStrategy: options.saveStrategy,
      saveSteps: options.saveSteps,
      // In the kernel an interrupt aborts the cell's signal: training stops at the next step boundary.
      signal: options.signal ?? kernelSignal(),
    };
    const id = newRunId(options.name ?? kind);
    const root = runsDirectory(options.runsDir);
    const dir = root ? path.join(root, id) : undefined;
    const outputDir = options.outputDir ?? (dir ? path.join(dir, "checkpoints") : undefined);
    const run = new Run(id, dir, kind, model, config, options, new Trainer(trainable, examples, { ...args, outputDir }));
    last = run;
    await run.record();
    return run.continue();
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
    return this.trainer.trainable.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
  }

  /** Continues an interrupted run from its last completed step. */
  async resume(options: { signal?: AbortSignal } = {}): Promise<Run> {
    if (this.status === "completed") return this;
    this.trainer.setSignal(options.signal ?? kernelSignal());
    return this.continue();
  }

  private async continue(): Promise<Run> {
    const live = new LiveProgress(this, this.options.liveEvery ?? 2);
    this.startBytes ??= tf.memory().numBytes;
    const weightBytes = [...this.trainer.trainable.parameterRoot.namedParameters()].reduce((sum, [, p]) => sum + 4 * p.size, 0);
    const off = this.trainer.on((e) => {
      if (e.type === "step") {
        this.peakTensorBytes = Math.max(this.peakTensorBytes, weightBytes + tf.memory().numBytes - this.startBytes!);
        this.appendMetrics(e.log);
        this.options.onStep?.(e.log, this);
        live.step();
      }
    });
    try {
      if (this.kind === "lora") activate(this.model as LoraModel);
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

  private appendMetrics(log: StepLog): void {
    if (!this.dir) return;
    fs.appendFileSync(path.join(this.dir, "metrics.jsonl"), `${JSON.stringify(log)}\n`);
  }

  summary(): Record<string, unknown> {
    return {
      id: this.id,
      kind: this.kind,
      status: this.status,
      steps: this.step,
      total_steps: this.totalSteps,
      final_loss: this.finalLoss ?? null,
      trainable_params: this.trainableParams,
      evals: this.evals,
      started: this.started.toISOString(),
      elapsed_seconds: this.history.at(-1)?.elapsedSeconds ?? 0,
      peak_tensor_bytes: this.peakTensorBytes,
    };
  }

  /** Writes config.json, summary.json and (when there are steps) the adapter into the registry folder. */
  private async record(): Promise<void> {
    if (!this.dir) return;
    fs.mkdirSync(this.dir, { recursive: true });
    const { evalData: _e, signal: _s, onStep: _o, ...options } = this.options;
    await writeFileAtomic(
      path.join(this.dir, "config.json"),
      `${JSON.stringify({ kind: this.kind, base: this.model.base.ref, lora: this.config, train: options }, null, 2)}\n`,
    );
    if (this.step > 0 && this.kind === "lora") await (this.model as LoraModel).save(path.join(this.dir, "adapter"));
    await writeFileAtomic(path.join(this.dir, "summary.json"), `${JSON.stringify(this.summary(), null, 2)}\n`);
  }

  /** Every logged step as an arquero table. */
  table(): aq.ColumnTable {
    return aq.from(this.history);
  }

  /** "LoRA r=8" or "full": the series name in charts. */
  get label(): string {
    return this.options.name ?? (this.kind === "lora" ? `LoRA r=${(this.model as LoraModel).config.r}` : "full");
  }

  /** The loss curve as a vega-lite spec. */
  chart(): Record<string, unknown> {
    return lossChart(this.history.map((h) => ({ step: h.step, loss: h.loss, series: this.label })));
  }

  [DISPLAY](): MimeBundle {
    const rows: [string, unknown][] = [
      ["id", this.id],
      ["status", this.status],
      ["steps", `${this.step}/${this.totalSteps}`],
      ["final loss", this.finalLoss?.toFixed(4) ?? "n/a"],
      ["trainable params", this.trainableParams.toLocaleString("en-US")],
      ...this.model.describe(),
    ];
    return {
      "text/plain": textKeyValues("Run", rows),
      "text/html": htmlKeyValues("Run", rows),
      "application/vnd.vegalite.v5+json": this.chart(),
    };
  }
}

/** Makes the run's own adapter the active one of its base model (other runs may have switched it). */
function activate(model: LoraModel) {
  const peft = model.base.peftModel();
  peft.setAdapter(model.adapterName);
  return peft;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const m = Math.floor(seconds / 60);
  return m ? `${m}m ${Math.round(seconds % 60)}s` : `${seconds.toFixed(0)}s`;
}

/**
 * In the loralab kernel: one output that updates in place, at most every `every` seconds, with a
 * progress line (step/total, loss, tokens/s, ETA) and the loss curve so far. Outside the kernel: nothing.
 */
class LiveProgress {
  private handle: KernelDisplayHandle | undefined;
  private last = 0;

  constructor(
    private readonly run: Run,
    private readonly every: number,
  ) {}

  line(): string {
    const h = this.run.history.at(-1);
    if (!h) return `${this.run.label}: starting`;
    const eta = ((this.run.totalSteps - h.step) * h.elapsedSeconds) / h.step;
    return `${this.run.label}: step ${h.step}/${this.run.totalSteps} · loss ${h.loss.toFixed(4)} · ${h.tokensPerSecond.toFixed(0)} tokens/s · ${this.run.status === "running" ? `ETA ${duration(eta)}` : this.run.status}`;
  }

  [DISPLAY](): MimeBundle {
    const line = this.line();
    return {
      "text/plain": line,
      "text/html": `<div><code>${escapeHtml(line)}</code></div>`,
      "application/vnd.vegalite.v5+json": this.run.chart(),
    };
  }

  step(): void {
    if (this.every <= 0) return;
    const now = performance.now();
    if (now - this.last < this.every * 1000) return;
    this.last = now;
    this.handle = this.handle ? this.handle.update(this) : kernelDisplay(this);
  }

  finish(): void {
    this.handle?.update(this);
  }
}
