/**
 * The training loop, as transformers' Trainer runs it: gradient accumulation, AdamW with a warmup schedule,
 * gradient clipping, periodic evaluation and checkpoints, resume, a guard against NaN/Inf and cooperative
 * cancellation. The options live in arguments.ts, the batch order in training-data.ts, the checkpoint files in
 * trainer-checkpoint.ts; this file decides what happens at each step.
 *
 * A step's loss is the mean token NLL over all tokens of its micro-batches together, so
 * accumulation over G micro-batches computes exactly what one batch G times larger would.
 */
import * as os from "node:os";
import * as path from "node:path";
import { activeBlas, tf } from "../backend/index.js";
import { check, invalid, validate } from "../core/check.js";
import { UserError } from "../core/errors.js";
import type { Example } from "../data/batch.js";
import { perplexity } from "../metrics/perplexity.js";
import { LayerNorm, RMSNorm } from "../nn/layers.js";
import { checkTrainingStepFits } from "./run-memory.js";
import type { Module } from "../nn/module.js";
import { type ResolvedTrainingOptions, resolveTrainingOptions, type TrainingOptions } from "./arguments.js";
import { AdamW, clipGradNorm } from "./optimizer.js";
import { lrMultiplier } from "./schedule.js";
import { autoWorkers, availableCores } from "./parallelism.js";
import { replicaRecipe } from "./replica.js";
import { Replicas } from "./replicas.js";
import { type NllSum, shareGradients, splitStep } from "./step.js";
import type { Trainable } from "./trainable.js";
import { type EvalLog, readCheckpoint, type StepLog, type TrainerState, writeCheckpoint } from "./trainer-checkpoint.js";
import { TrainingData } from "./training-data.js";

export type { EvalLog, StepLog } from "./trainer-checkpoint.js";

/** The options of arguments.ts plus what a run trains against and where it writes. */
export interface TrainingArguments extends TrainingOptions {
  /** Evaluated every evalSteps steps and at the end. */
  evalData?: Example[];
  /** Where checkpoint-N/ folders go (needed when saveStrategy is not "no"). */
  outputDir?: string;
  /** Checked between steps; an abort ends train() with reason "cancelled" (train() again continues). */
  signal?: AbortSignal;
  /** Profile each step's tensor memory (tf.profile) and sample the process RSS: StepLog's stepPeakBytes and rssBytes. */
  measureMemory?: boolean;
}

const WHERE = "training arguments";

export type TrainerEvent =
  | { type: "step"; log: StepLog }
  | { type: "eval"; log: EvalLog }
  | { type: "save"; step: number; dir: string }
  | { type: "end"; result: TrainResult };

export interface TrainResult {
  reason: "completed" | "cancelled" | "diverged";
  steps: number;
  totalSteps: number;
  /** What diverged, when reason = "diverged". */
  message?: string;
  history: StepLog[];
  evals: EvalLog[];
  lastCheckpoint?: string;
  /** Threads that computed the steps of this train() call (see Trainer.parallelism). */
  workers: number;
}

type Listener = (e: TrainerEvent) => void;

function noDecayParameters(model: Module): Set<string> {
  const names = new Set<string>();
  for (const [path, m] of model.namedModules()) {
    const isNorm = m instanceof RMSNorm || m instanceof LayerNorm;
    for (const [name] of m.namedParameters(path)) if (isNorm || /(?:^|\.)bias$/.test(name)) names.add(name);
  }
  return names;
}

const abortSignal = check<AbortSignal>("an AbortSignal", (v) => v instanceof AbortSignal);

export class Trainer {
  readonly options: ResolvedTrainingOptions;
  readonly optimizer: AdamW;
  /** The rows, cut to options.maxLength (default: the model's context), and their order. */
  readonly data: TrainingData;
  private readonly evalData: Example[] | undefined;
  private readonly measureMemory: boolean;
  private readonly outputDir: string | undefined;
  private signal: AbortSignal | undefined;
  private readonly listeners: Listener[] = [];
  private state: TrainerState;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  /** The data-parallel replicas while train() runs with more than one thread. */
  private replicas: Replicas | undefined;
  /** What "auto" picked for this run (see parallelism). */
  private autoParallelism: { workers: number; why: string } | undefined;
  /** Parameters exempt from weight decay: biases and normalisation weights, as transformers' Trainer. */
  private readonly noDecay: ReadonlySet<string>;

  constructor(
    readonly trainable: Trainable,
    rows: Example[],
    args: TrainingArguments = {},
  ) {
    const options = resolveTrainingOptions(
      args,
      { where: WHERE, otherKeys: ["evalData", "outputDir", "signal", "measureMemory"] },
      trainable.model.config.maxPositions,
    );
    this.options = options;
    if (args.signal !== undefined) validate(args.signal, abortSignal, WHERE, "signal");
    if (options.saveStrategy !== "no" && !args.outputDir)
      throw invalid(WHERE, "outputDir", `a directory (saveStrategy "${options.saveStrategy}" writes checkpoints)`, args.outputDir);
    this.evalData = args.evalData;
    this.outputDir = args.outputDir;
    this.signal = args.signal;
    this.data = new TrainingData(rows, options.maxLength, options);
    this.measureMemory = args.measureMemory === true;
    checkTrainingStepFits(
      trainable.model,
      {
        batch: options.batchSize,
        seq: this.data.examples.reduce((longest, e) => Math.max(longest, e.inputIds.length), 0),
        checkpointing: options.gradientCheckpointing,
        full: trainable.kind === "full",
        trainableParams: trainable.trainableParameters().reduce((sum, [, p]) => sum + p.size, 0),
      },
      !trainable.model.namedStoredWeights().next().done,
    );
    const rowsPerStep = options.batchSize * options.gradAccum;
    this.stepsPerEpoch = Math.ceil(this.data.length / rowsPerStep);
    this.totalSteps = options.maxSteps ?? Math.ceil((options.epochs * this.data.length) / rowsPerStep);
    this.warmupSteps = options.warmupSteps ?? Math.ceil(options.warmupRatio * this.totalSteps);
    this.optimizer = new AdamW({ betas: options.betas, eps: options.eps, weightDecay: options.weightDecay });
    this.noDecay = noDecayParameters(trainable.parameterRoot);
    this.state = { step: 0, randomState: trainable.random.getState(), history: [], evals: [], elapsedSeconds: 0 };
  }

  on(listener: Listener): () => void {
    this.listeners.push(listener);
    return () => this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  private emit(e: TrainerEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Replaces the cancellation signal (a resumed run gets a fresh one). */
  setSignal(signal: AbortSignal | undefined): void {
    this.signal = signal;
  }

  get step(): number {
    return this.state.step;
  }

  get history(): StepLog[] {
    return this.state.history;
  }

  /** Row indices of optimizer step `step` (0-based), one list per micro-batch. */
  rowsOfStep(step: number): number[][] {
    return this.data.rowsOfStep(step);
  }

  /**
   * Gradients of the step's summed token NLL / its counted tokens for each trainable parameter, and that NLL sum:
   * here, or split over the data-parallel replicas. Each micro-batch gets a dropout seed, and each row its masks
   * from it (lora/dropout.ts): the same masks wherever the row is computed.
   */
  private async gradients(microBatches: number[][], total: number): Promise<{ grads: Map<string, tf.Tensor>; nllSum: number }> {
    const examples = microBatches.map((rows) => rows.map((r) => this.data.examples[r]!));
    // Only micro-batches that compute draw a seed: one without counted tokens changes nothing, dropout included.
    const seeds = microBatches.map((rows) => (this.data.countedTokens(rows) > 0 ? this.trainable.random.int(2 ** 31) : 0));
    const shares = splitStep(examples, seeds, total, this.replicas?.count ?? 1);
    if (this.replicas) return this.replicas.gradientsOf(shares);
    return shareGradients(this.trainable, shares[0]!, this.options);
  }

  /** One optimizer step; returns its log, or a description of what diverged. */
  private async trainStep(): Promise<StepLog | string> {
    const started = performance.now();
    const params = this.trainable.trainableParameters();
    const microBatches = this.data.rowsOfStep(this.state.step);
    const total = this.data.countedTokens(microBatches.flat());
    const { grads, nllSum } = await this.gradients(microBatches, Math.max(total, 1));
    const loss = total > 0 ? nllSum / total : 0;
    const gradNorm = clipGradNorm(grads, this.options.maxGradNorm);
    const stepNumber = this.state.step + 1;
    const lr = this.options.lr * lrMultiplier(this.options.schedule, this.state.step, this.warmupSteps, this.totalSteps);
    try {
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm))
        return `step ${stepNumber}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`}; the update was not applied`;
      if (!this.optimizer.apply(params, grads, lr, this.noDecay))
        return `step ${stepNumber}: the update (lr ${lr}) would make weights non-finite; it was not applied`;
    } finally {
      tf.dispose([...grads.values()]);
    }
    await this.replicas?.syncWeights();
    const seconds = (performance.now() - started) / 1000;
    this.state.elapsedSeconds += seconds;
    this.state.step = stepNumber;
    const tokens = this.data.tokens(microBatches.flat());
    return {
      step: stepNumber,
      epoch: (stepNumber * this.options.batchSize * this.options.gradAccum) / this.data.length,
      loss,
      lr,
      gradNorm,
      tokens,
      tokensPerSecond: tokens / seconds,
      elapsedSeconds: this.state.elapsedSeconds,
    };
  }

  /** trainStep under tf.profile: the step's peak of tensor memory, and the process RSS after it. */
  private async measuredStep(): Promise<StepLog | string> {
    let log: StepLog | string = "";
    const start = tf.memory().numBytes;
    const profile = await tf.profile(async () => {
      log = await this.trainStep();
      return [];
    });
    if (typeof log === "string") return log;
    return { ...(log as StepLog), stepPeakBytes: Math.max(profile.peakBytes - start, 0), rssBytes: process.memoryUsage().rss };
  }

  evaluate(data: Example[] = this.evalData ?? []): EvalLog {
    const result = perplexity(this.trainable.model, data, { batchSize: this.options.batchSize });
    return { step: this.state.step, evalLoss: result.loss, evalPerplexity: result.perplexity };
  }

  private shouldSave(step: number): boolean {
    if (this.options.saveStrategy === "steps") return step % this.options.saveSteps === 0 || step === this.totalSteps;
    if (this.options.saveStrategy === "epoch") return step % this.stepsPerEpoch === 0 || step === this.totalSteps;
    return false;
  }

  /** Writes outputDir/checkpoint-<step>/ (trainable weights, optimizer moments, trainer state) atomically. */
  async saveCheckpoint(dir = path.join(this.outputDir ?? ".", `checkpoint-${this.state.step}`)): Promise<string> {
    const state = { ...this.state, randomState: this.trainable.random.getState() };
    await writeCheckpoint(dir, { trainable: this.trainable, optimizer: this.optimizer, state, options: this.options });
    return dir;
  }

  /** Restores weights, optimizer moments, step and random state from a checkpoint directory. */
  async resumeFrom(dir: string): Promise<void> {
    this.state = await readCheckpoint(dir, this.trainable, this.optimizer);
  }

  /**
   * The threads train() computes with, and why: options.workers; for "auto", what the run chose when it first
   * trained (checkpoints keep it, so a resumed run splits its steps as before), else what autoWorkers picks for the
   * whole run on this machine (decided once).
   */
  get parallelism(): { workers: number; why: string } {
    const { workers, batchSize, gradAccum } = this.options;
    if (workers !== "auto") return { workers, why: "the workers option" };
    if (this.state.workers !== undefined) return { workers: this.state.workers, why: "as the run chose when it started" };
    if (this.autoParallelism) return this.autoParallelism;
    const recipe = replicaRecipe(this.trainable);
    // A step splits each micro-batch's rows, or deals whole micro-batches out when they have fewer rows than threads.
    const parts = Math.min(Math.max(batchSize, gradAccum), this.data.length);
    const rowsPerStep = Math.min(batchSize * gradAccum, this.data.length);
    const meanRow = this.data.examples.reduce((sum, e) => sum + e.inputIds.length, 0) / this.data.length;
    this.autoParallelism = autoWorkers({
      cores: availableCores(),
      backend: tf.getBackend(),
      parts,
      tokensPerStep: rowsPerStep * meanRow,
      parameters: [...this.trainable.parameterRoot.namedParameters()].reduce((sum, [, p]) => sum + p.size, 0),
      full: this.trainable.kind === "full",
      steps: this.totalSteps,
      notReplicable: typeof recipe === "string" ? recipe : undefined,
      memoryBytes: os.totalmem(),
      nativeBlas: tf.getBackend() === "wasm" && activeBlas() !== undefined,
    });
    return this.autoParallelism;
  }

  /** The replicas for `workers` threads; under "auto", a model its replicas refuse trains in this thread instead. */
  private async startReplicas(workers: number): Promise<Replicas | undefined> {
    try {
      return await Replicas.start(this.trainable, workers, this.options);
    } catch (e) {
      if (this.options.workers !== "auto" || !(e instanceof UserError)) throw e;
      this.autoParallelism = { workers: 1, why: e.message };
      return undefined;
    }
  }

  /**
   * Trains until totalSteps (continuing from the current step: after a cancel, call again to resume). With more
   * than one thread the replicas start here with the current weights and end before train() returns.
   */
  async train(): Promise<TrainResult> {
    const run = { lastCheckpoint: undefined as string | undefined };
    let end: { reason: TrainResult["reason"]; message?: string };
    const { workers } = this.parallelism;
    if (workers > 1 && this.state.step < this.totalSteps) this.replicas = await this.startReplicas(workers);
    const threads = this.replicas?.count ?? 1;
    if (this.options.workers === "auto") this.state.workers ??= threads;
    try {
      end = await this.steps(run);
    } finally {
      await this.replicas?.terminate();
      this.replicas = undefined;
    }
    const result: TrainResult = {
      ...end,
      steps: this.state.step,
      totalSteps: this.totalSteps,
      history: this.state.history,
      evals: this.state.evals,
      lastCheckpoint: run.lastCheckpoint,
      workers: threads,
    };
    this.emit({ type: "end", result });
    return result;
  }

  private async steps(run: { lastCheckpoint?: string }): Promise<{ reason: TrainResult["reason"]; message?: string }> {
    while (this.state.step < this.totalSteps) {
      // Yield to the event loop between steps: signals, kernel messages and timers get their turn.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.signal?.aborted) return { reason: "cancelled" };
      const log = this.measureMemory ? await this.measuredStep() : await this.trainStep();
      if (typeof log === "string") return { reason: "diverged", message: log };
      this.state.history.push(log);
      this.emit({ type: "step", log });
      const evalDue = this.evalData && this.options.evalSteps > 0 && log.step % this.options.evalSteps === 0;
      if (evalDue) await this.recordEval();
      if (this.shouldSave(log.step)) {
        run.lastCheckpoint = await this.saveCheckpoint();
        this.emit({ type: "save", step: log.step, dir: run.lastCheckpoint });
      }
    }
    if (this.evalData && this.state.evals.at(-1)?.step !== this.state.step) await this.recordEval();
    return { reason: "completed" };
  }

  /** evaluate() on the evaluation data, shared among the replicas while they run. */
  private async evaluateDuringTraining(): Promise<EvalLog> {
    if (!this.replicas) return this.evaluate();
    let sums: NllSum | undefined;
    try {
      sums = await this.replicas.score(this.evalData ?? [], this.options.batchSize);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
    }
    const evalLoss = sums ? sums.nllSum / sums.tokens : NaN;
    // Nothing to score, or a part's loss not finite: this thread alone says what is wrong, naming the row as it would.
    if (!Number.isFinite(evalLoss)) return this.evaluate();
    return { step: this.state.step, evalLoss, evalPerplexity: Math.exp(evalLoss) };
  }

  private async recordEval(): Promise<void> {
    const log = await this.evaluateDuringTraining();
    this.state.evals.push(log);
    this.emit({ type: "eval", log });
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
