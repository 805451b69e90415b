/**
 * `loralab bench --config NAME --mode lora|qlora|full`: training steps of a named model shape with random
 * weights and random tokens, through the Trainer. Reports the median step after a warm-up step, the
 * process's peak RSS, the weights by storage format and the optimizer's state, tfjs's live tensor bytes
 * after the steps, and the achieved matmul GFLOP/s. QLoRA: NF4 + double quantization, LoRA on every projection.
 */
import { backendInfo, initBackend, matmulEngine, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { Random } from "../core/random.js";
import { median } from "../core/stats.js";
import type { LlamaConfig } from "../models/config.js";
import type { CausalLM } from "../models/causal-lm.js";
import { PeftModel } from "../lora/peft-model.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../train/trainable.js";
import { Trainer } from "../train/trainer.js";
import { weightsByFormat } from "../train/run-memory.js";
import type { FormatShare } from "../models/memory-estimate.js";
import type { Example } from "../data/batch.js";
import type { WorkersOption } from "../train/parallelism.js";
import { type BenchShape, randomModel, stepFlops } from "./bench-setup.js";
import { profileStep, type StepProfile } from "./bench-profile.js";

export type TrainMode = "lora" | "qlora" | "full";
export const TRAIN_MODES: readonly TrainMode[] = ["lora", "qlora", "full"];

export interface TrainBenchOptions {
  shape: BenchShape;
  mode: TrainMode;
  steps: number;
  /** Data-parallel worker threads (the Trainer's `workers`). */
  workers: WorkersOption;
  backend: string | undefined;
  /** Also profile one more step per kernel (see bench-profile.ts). */
  profile: boolean;
  /** The Trainer's gradientCheckpointing: keep each decoder layer's input only, recompute the rest. */
  gradientCheckpointing: boolean;
}

export interface TrainBenchResult {
  tokens_per_s: number;
  step_s: number;
  peak_rss_bytes: number;
  backend: string;
  workers: number;
  gflops: number;
  /** What the matrix products ran on: the native BLAS, or why not (e.g. "matmul on XNNPACK (LORALAB_BLAS=off)"). */
  matmul: string;
  /** Everything below describes the run; the fields above are the measurement. */
  config: string;
  mode: TrainMode;
  batch: number;
  seq: number;
  steps: number;
  step_times_s: number[];
  /** CPU time (user + system) of the process per step: steadier than wall time on a busy machine. */
  step_cpu_s: number;
  first_loss: number;
  trainable_params: number;
  tensor_bytes: number;
  /** Weights by storage format ("f32", "nf4+dq") and AdamW's state, in bytes. */
  memory: { weights: Record<string, FormatShare>; optimizer_bytes: number };
  profile?: StepProfile;
}

/** Sequences of random token ids, seeded: the same data on every run and in the PyTorch reference's shapes. */
export function randomExamples(count: number, seq: number, vocab: number, seed = 1): Example[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => ({ inputIds: Array.from({ length: seq }, () => random.int(vocab)) }));
}

export function makeTrainable(model: CausalLM, mode: TrainMode): Trainable {
  if (mode === "full") return new FullTrainable(model);
  return new LoraTrainable(PeftModel.create(model, { r: 8, targets: mode === "qlora" ? "all-linear" : ["q_proj", "v_proj"] }));
}

export async function trainBench(name: string, o: TrainBenchOptions): Promise<TrainBenchResult> {
  await initBackend(o.backend);
  const model = randomModel(o.shape.config, 0, o.mode === "qlora" ? "nf4-dq" : undefined);
  const config = model.config as LlamaConfig;
  const { batch, seq } = o.shape;
  if (seq > config.maxPositions) throw new UserError(`--seq: expected at most ${config.maxPositions}, got ${seq}`);
  const trainable = makeTrainable(model, o.mode);
  const data = randomExamples(batch * (o.steps + 1), seq, config.vocabSize);
  const trainer = new Trainer(trainable, data, {
    maxSteps: o.steps + 1,
    batchSize: batch,
    lr: 1e-4,
    shuffle: false,
    workers: o.workers,
    gradientCheckpointing: o.gradientCheckpointing,
  });
  const cpu = [process.cpuUsage()];
  trainer.on((e) => {
    if (e.type === "step") cpu.push(process.cpuUsage());
  });
  const { workers } = await trainer.train();
  const cpuSeconds = cpu.slice(2).map((c, i) => (c.user + c.system - cpu[i + 1]!.user - cpu[i + 1]!.system) / 1e6);
  const history = trainer.history;
  const times = history.slice(1).map((s, i) => s.elapsedSeconds - history[i]!.elapsedSeconds); // the first step warms up
  const stepSeconds = median(times);
  const result: TrainBenchResult = {
    tokens_per_s: (batch * seq) / stepSeconds,
    step_s: stepSeconds,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    backend: backendInfo()!.name,
    workers,
    gflops: stepFlops(config, batch, seq, o.mode) / stepSeconds / 1e9,
    matmul: matmulEngine(backendInfo()!),
    config: name,
    mode: o.mode,
    batch,
    seq,
    steps: o.steps,
    step_times_s: times,
    step_cpu_s: median(cpuSeconds),
    first_loss: history[0]!.loss,
    trainable_params: trainable.trainableParameters().reduce((s, [, p]) => s + p.size, 0),
    tensor_bytes: tf.memory().numBytes,
    memory: {
      weights: weightsByFormat(model.namedParameters(), model.namedStoredWeights()),
      optimizer_bytes: trainer.optimizer.stateBytes,
    },
  };
  trainer.dispose();
  if (o.profile) result.profile = await profileStep(trainable, data.slice(0, batch));
  return result;
}
