/**
 * Memory of a training run, before and after: the estimate a Trainer checks before its first step (so that a
 * --batch 100000 or a --seq the backend cannot hold fails with what it needs instead of crashing the backend),
 * and the measured report (weights by storage format, optimizer state, activation peak, process RSS).
 */
import { ensureFits, type MemoryNeed, OPTIMIZER_COPIES } from "../backend/memory.js";
import type { CausalLM } from "../models/causal-lm.js";
import { type FormatShare, passBytes, projectionElements } from "../models/memory-estimate.js";
import type { StoredWeight } from "../nn/module.js";
import type { tf } from "../backend/index.js";
import { TRAINING_FIELDS, type TrainingFieldName } from "./arguments.js";
import type { AdamW } from "./optimizer.js";
import type { StepLog } from "./trainer-checkpoint.js";

/** "--batch (batchSize)": how a remedy names an option for both faces. */
const option = (field: TrainingFieldName) => `--${TRAINING_FIELDS[field].flag} (${field})`;

export interface StepPlan {
  batch: number;
  /** The longest row after cutting (rows are padded to the longest of their batch). */
  seq: number;
  checkpointing: boolean;
  /** Full fine-tuning (every weight trains) or an adapter on a frozen base. */
  full: boolean;
  /** Elements of the parameters that train. */
  trainableParams: number;
}

/** What one training step adds to the tensors already alive: activations and gradients, then AdamW's update. */
export function trainingStepNeeds(model: CausalLM, plan: StepPlan): MemoryNeed[] {
  const pass = { kind: plan.full ? "full" : "adapter", checkpointing: plan.checkpointing, ...projectionElements(model) } as const;
  return [
    { what: "activations and gradients", bytes: passBytes(model.config, plan, pass) },
    { what: "AdamW state and update", bytes: 4 * OPTIMIZER_COPIES * plan.trainableParams },
  ];
}

/** Refuses a training step the backend cannot hold (see trainingStepNeeds), naming the options that shrink it. */
export function checkTrainingStepFits(model: CausalLM, plan: StepPlan, quantized: boolean): void {
  const remedies = [`a smaller ${option("batchSize")} or ${option("maxLength")}`];
  if (!plan.checkpointing) remedies.push(`${option("gradientCheckpointing")}: true`);
  if (plan.full) remedies.push("LoRA or QLoRA instead of full fine-tuning");
  else if (!quantized) remedies.push("QLoRA (--qlora, base.qlora(…))");
  ensureFits(`a training step of ${plan.batch} × ${plan.seq} tokens`, trainingStepNeeds(model, plan), remedies);
}

/** Parameters and bytes by storage format: float32 variables as "f32", compact weights as their format. */
export function weightsByFormat(
  parameters: Iterable<readonly [string, tf.Variable]>,
  stored: Iterable<readonly [string, StoredWeight]>,
): Record<string, FormatShare> {
  const out: Record<string, FormatShare> = {};
  const add = (format: string, params: number, bytes: number) => {
    const share = (out[format] ??= { params: 0, bytes: 0 });
    share.params += params;
    share.bytes += bytes;
  };
  for (const [, p] of parameters) add("f32", p.size, 4 * p.size);
  for (const [, w] of stored)
    add(
      w.format,
      w.shape.reduce((a, b) => a * b, 1),
      w.byteLength,
    );
  return out;
}

/** Measured memory of a run. */
export interface MemoryReport {
  /** The weights the run computes with, by storage format (base model and its own adapter). */
  weights: Record<string, FormatShare>;
  /** AdamW's moments (two float32 values per trainable parameter). */
  optimizerBytes: number;
  /** The most tensor memory a step added on top of what was alive when it started (activations, gradients). */
  activationPeakBytes: number;
  /** Tensor memory of the run at its peak: its float32 weights, the optimizer state and the largest step peak. */
  peakTensorBytes: number;
  /** Highest resident set size of the process sampled after a step (compact weights, JS heap and backend). */
  rssBytes: number;
}

/** The report of a run whose steps were measured (Trainer's measureMemory): the model it computes with, its optimizer, its steps. */
export function memoryReport(
  model: { namedParameters(): Iterable<readonly [string, tf.Variable]>; namedStoredWeights(): Iterable<readonly [string, StoredWeight]> },
  optimizer: AdamW,
  history: readonly StepLog[],
): MemoryReport {
  const weights = weightsByFormat(model.namedParameters(), model.namedStoredWeights());
  const most = (key: "stepPeakBytes" | "rssBytes") => history.reduce((m, h) => Math.max(m, h[key] ?? 0), 0);
  const activationPeakBytes = most("stepPeakBytes");
  return {
    weights,
    optimizerBytes: optimizer.stateBytes,
    activationPeakBytes,
    peakTensorBytes: (weights.f32?.bytes ?? 0) + optimizer.stateBytes + activationPeakBytes,
    rssBytes: most("rssBytes"),
  };
}
