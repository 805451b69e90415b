/**
 * The training loop (the seed's Trainer): batches with padding and label masks, gradient
 * accumulation, AdamW with a warmup schedule, gradient clipping, periodic evaluation and
 * checkpoints, resume, a NaN/Inf guard and cooperative cancellation.
 *
 * A step's loss is the mean token NLL over all tokens of its micro-batches together, so
 * accumulation over G micro-batches computes exactly what one batch G times larger would.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { readSafetensors, serializeSafetensors, type TensorToWrite } from "../checkpoint/safetensors.js";
import { writeFileAtomic } from "../core/files.js";
import { collate, disposeBatch, type Example } from "../data/batch.js";
import { IGNORE_INDEX, tokenNll } from "../models/loss.js";
import { perplexity } from "../metrics/perplexity.js";
import { Random } from "../core/random.js";
import { LayerNorm, RMSNorm } from "../nn/layers.js";
import type { Module } from "../nn/module.js";
import { AdamW, clipGradNorm } from "./optimizer.js";
import { lrMultiplier, type ScheduleName, SCHEDULES } from "./schedule.js";
import type { Trainable } from "./trainable.js";

export interface TrainingArguments {
  /** Peak learning rate (default 2e-4). */
  lr?: number;
  /** Sequences per micro-batch (default 8). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Passes over the data (default 1); ignored when maxSteps is set. */
  epochs?: number;
  maxSteps?: number;
  warmupSteps?: number;
  /** Warmup as a fraction of all steps (used when warmupSteps is not given). */
  warmupRatio?: number;
  schedule?: ScheduleName;
  weightDecay?: number;
  /** Clip the global gradient norm to this (default 1.0, as transformers); 0 = off. */
  maxGradNorm?: number;
  betas?: [number, number];
  eps?: number;
  /** Truncate examples to this many tokens. */
  maxLength?: number;
  seed?: number;
  /** Reshuffle the data every epoch (default true); false takes rows in order, wrapping around. */
  shuffle?: boolean;
  /** Evaluate on evalData every N steps (0 = only at the end when evalData is given). */
  evalSteps?: number;
  evalData?: Example[];
  saveStrategy?: "no" | "epoch" | "steps";
  saveSteps?: number;
  outputDir?: string;
  /** Checked between steps; an abort ends train() with reason "cancelled" (resume continues). */
  signal?: AbortSignal;
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface EvalLog {
  step: number;
  evalLoss: number;
  evalPerplexity: number;
}

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
}

interface TrainerState {
  step: number;
  randomState: number;
  history: StepLog[];
  evals: EvalLog[];
  elapsedSeconds: number;
}

const STATE_FILE = "trainer_state.json";
const OPTIMIZER_FILE = "optimizer.safetensors";

type Resolved = Required<Omit<TrainingArguments, "maxSteps" | "warmupSteps" | "evalData" | "outputDir" | "signal">> & TrainingArguments;

function resolveArgs(a: TrainingArguments): Resolved {
  const r: Resolved = {
    lr: 2e-4,
    batchSize: 8,
    gradAccum: 1,
    epochs: 1,
    warmupRatio: 0,
    schedule: "linear" as ScheduleName,
    weightDecay: 0,
    maxGradNorm: 1,
    betas: [0.9, 0.999] as [number, number],
    eps: 1e-8,
    maxLength: 0,
    seed: 42,
    shuffle: true,
    evalSteps: 0,
    saveStrategy: "no" as const,
    saveSteps: 500,
    ...(Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) as TrainingArguments),
  };
  const positiveInt = (k: keyof Resolved) => {
    const v = r[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0)
      throw new UserError(`training argument ${String(k)}: expected a positive integer, got ${JSON.stringify(v)}`);
  };
  positiveInt("batchSize");
  positiveInt("gradAccum");
  if (r.maxSteps !== undefined) positiveInt("maxSteps");
  if (!(r.lr > 0)) throw new UserError(`training argument lr: expected a positive number, got ${r.lr}`);
  if (!SCHEDULES.includes(r.schedule))
    throw new UserError(`training argument schedule: expected one of ${SCHEDULES.join(", ")}, got "${r.schedule}"`);
  if (r.saveStrategy !== "no" && !r.outputDir) throw new UserError(`training argument saveStrategy "${r.saveStrategy}" needs outputDir`);
  return r;
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

export class Trainer {
  readonly args: Resolved;
  readonly optimizer: AdamW;
  private readonly examples: Example[];
  private readonly listeners: Listener[] = [];
  private state: TrainerState;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  /** Parameters exempt from weight decay: biases and normalisation weights, as transformers' Trainer. */
  private readonly noDecay: ReadonlySet<string>;

  constructor(
    readonly trainable: Trainable,
    data: Example[],
    args: TrainingArguments = {},
  ) {
    this.args = resolveArgs(args);
    if (data.length === 0) throw new UserError("training data is empty");
    const max = this.args.maxLength;
    this.examples = data.map((e) =>
      max > 0 && e.inputIds.length > max ? { inputIds: e.inputIds.slice(0, max), labels: e.labels?.slice(0, max) } : e,
    );
    const rowsPerStep = this.args.batchSize * this.args.gradAccum;
    this.stepsPerEpoch = Math.ceil(this.examples.length / rowsPerStep);
    this.totalSteps = this.args.maxSteps ?? Math.ceil((this.args.epochs * this.examples.length) / rowsPerStep);
    this.warmupSteps = this.args.warmupSteps ?? Math.ceil(this.args.warmupRatio * this.totalSteps);
    this.optimizer = new AdamW({ betas: this.args.betas, eps: this.args.eps, weightDecay: this.args.weightDecay });
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
    this.args.signal = signal;
  }

  get step(): number {
    return this.state.step;
  }

  get history(): StepLog[] {
    return this.state.history;
  }

  /**
   * Row indices of optimizer step `step`: the data is a stream of epochs, each in its own order
   * (a permutation seeded by seed + epoch, or file order), cut into consecutive groups.
   */
  private rowsOfStep(step: number): number[][] {
    const n = this.examples.length;
    const { batchSize, gradAccum } = this.args;
    const start = step * batchSize * gradAccum;
    const orders = new Map<number, number[]>();
    const row = (i: number) => {
      const epoch = Math.floor(i / n);
      if (!orders.has(epoch)) {
        const identity = Array.from({ length: n }, (_, k) => k);
        orders.set(epoch, this.args.shuffle ? new Random(this.args.seed + epoch).shuffle(identity) : identity);
      }
      return orders.get(epoch)![i % n]!;
    };
    return Array.from({ length: gradAccum }, (_, m) => Array.from({ length: batchSize }, (_, b) => row(start + m * batchSize + b)));
  }

  private countedTokens(rows: number[]): number {
    let count = 0;
    for (const r of rows) {
      const e = this.examples[r]!;
      const labels = e.labels ?? e.inputIds;
      for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) count++;
    }
    return count;
  }

  /** One optimizer step; returns its log, or a description of what diverged. */
  private trainStep(): StepLog | string {
    const started = performance.now();
    const params = this.trainable.trainableParameters();
    const vars = params.map(([, p]) => p);
    const byVarName = new Map(params.map(([name, p]) => [p.name, name]));
    const microBatches = this.rowsOfStep(this.state.step);
    const total = this.countedTokens(microBatches.flat());
    const grads = new Map<string, tf.Tensor>();
    let nllSum = 0;
    this.trainable.setTraining(true);
    try {
      for (const rows of microBatches) {
        const batch = collate(rows.map((r) => this.examples[r]!));
        const { value, grads: g } = tf.variableGrads(
          () =>
            tf.tidy(() => {
              const { nll } = tokenNll(this.trainable.model.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels);
              return nll.sum().div(Math.max(total, 1)) as tf.Scalar;
            }),
          vars,
        );
        disposeBatch(batch);
        nllSum += value.dataSync()[0]! * Math.max(total, 1);
        value.dispose();
        for (const [varName, grad] of Object.entries(g)) {
          const name = byVarName.get(varName)!;
          const previous = grads.get(name);
          grads.set(name, previous ? tf.tidy(() => previous.add(grad)) : grad);
          if (previous) {
            previous.dispose();
            grad.dispose();
          }
        }
      }
    } finally {
      this.trainable.setTraining(false);
    }
    const loss = total > 0 ? nllSum / total : 0;
    const gradNorm = clipGradNorm(grads, this.args.maxGradNorm);
    const stepNumber = this.state.step + 1;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      tf.dispose([...grads.values()]);
      return `step ${stepNumber}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`}; the update was not applied`;
    }
    const lr = this.args.lr * lrMultiplier(this.args.schedule, this.state.step, this.warmupSteps, this.totalSteps);
    this.optimizer.apply(params, grads, lr, this.noDecay);
    tf.dispose([...grads.values()]);
    const seconds = (performance.now() - started) / 1000;
    this.state.elapsedSeconds += seconds;
    this.state.step = stepNumber;
    const tokens = microBatches.flat().reduce((s, r) => s + this.examples[r]!.inputIds.length, 0);
    return {
      step: stepNumber,
      epoch: (stepNumber * this.args.batchSize * this.args.gradAccum) / this.examples.length,
      loss,
      lr,
      gradNorm,
      tokens,
      tokensPerSecond: tokens / seconds,
      elapsedSeconds: this.state.elapsedSeconds,
    };
  }

  evaluate(data: Example[] = this.args.evalData ?? []): EvalLog {
    const result = perplexity(this.trainable.model, data, { batchSize: this.args.batchSize });
    return { step: this.state.step, evalLoss: result.loss, evalPerplexity: result.perplexity };
  }

  private shouldSave(step: number): boolean {
    if (this.args.saveStrategy === "steps") return step % this.args.saveSteps === 0 || step === this.totalSteps;
    if (this.args.saveStrategy === "epoch") return step % this.stepsPerEpoch === 0 || step === this.totalSteps;
    return false;
  }

  /** Writes outputDir/checkpoint-<step>/ (trainable weights, optimizer moments, trainer state) atomically. */
  async saveCheckpoint(dir = path.join(this.args.outputDir ?? ".", `checkpoint-${this.state.step}`)): Promise<string> {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    try {
      await this.trainable.save(tmp);
      const moments: Record<string, TensorToWrite> = {};
      for (const [name, t] of this.optimizer.stateTensors()) moments[name] = { shape: t.shape, data: t.dataSync() as Float32Array };
      await writeFileAtomic(path.join(tmp, OPTIMIZER_FILE), serializeSafetensors(moments, { step: String(this.optimizer.step) }));
      const state: TrainerState = { ...this.state, randomState: this.trainable.random.getState() };
      await writeFileAtomic(
        path.join(tmp, STATE_FILE),
        `${JSON.stringify({ ...state, args: { ...this.args, evalData: undefined, signal: undefined } }, null, 2)}\n`,
      );
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    return dir;
  }

  /** Restores weights, optimizer moments, step and random state from a checkpoint directory. */
  async resumeFrom(dir: string): Promise<void> {
    const stateFile = path.join(dir, STATE_FILE);
    if (!fs.existsSync(stateFile)) throw new UserError(`${stateFile}: not found (not a loralab checkpoint directory)`);
    const saved = JSON.parse(fs.readFileSync(stateFile, "utf8")) as TrainerState;
    await this.trainable.restore(dir);
    const optimizer = await readSafetensors(path.join(dir, OPTIMIZER_FILE));
    this.optimizer.loadState(saved.step, optimizer);
    this.state = {
      step: saved.step,
      randomState: saved.randomState,
      history: saved.history,
      evals: saved.evals,
      elapsedSeconds: saved.elapsedSeconds,
    };
    this.trainable.random.setState(saved.randomState);
  }

  /** Trains until totalSteps (continuing from the current step: after a cancel, call again to resume). */
  async train(): Promise<TrainResult> {
    let lastCheckpoint: string | undefined;
    const finish = (reason: TrainResult["reason"], message?: string): TrainResult => {
      const result: TrainResult = {
        reason,
        steps: this.state.step,
        totalSteps: this.totalSteps,
        history: this.state.history,
        evals: this.state.evals,
        lastCheckpoint,
        message,
      };
      this.emit({ type: "end", result });
      return result;
    };
    while (this.state.step < this.totalSteps) {
      // Yield to the event loop between steps: signals, kernel messages and timers get their turn.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.args.signal?.aborted) return finish("cancelled");
      const log = this.trainStep();
      if (typeof log === "string") return finish("diverged", log);
      this.state.history.push(log);
      this.emit({ type: "step", log });
      const evalDue = this.args.evalData && this.args.evalSteps > 0 && log.step % this.args.evalSteps === 0;
      if (evalDue) this.recordEval();
      if (this.shouldSave(log.step)) {
        lastCheckpoint = await this.saveCheckpoint();
        this.emit({ type: "save", step: log.step, dir: lastCheckpoint });
      }
    }
    if (this.args.evalData && this.state.evals.at(-1)?.step !== this.state.step) this.recordEval();
    return finish("completed");
  }

  private recordEval(): void {
    const log = this.evaluate();
    this.state.evals.push(log);
    this.emit({ type: "eval", log });
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
