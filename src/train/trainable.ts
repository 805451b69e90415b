/**
 * What the Trainer trains: a LoRA-wrapped model (only adapter weights train) or a whole model
 * (full fine-tuning, the baseline LoRA is compared with). Both save and restore their trainable
 * weights for checkpoints.
 */
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { readSafetensors, serializeSafetensors, type TensorToWrite } from "../checkpoint/safetensors.js";
import { writeFileAtomic } from "../core/files.js";
import type { CausalLM } from "../models/causal-lm.js";
import { assignWeights } from "../models/checkpoint-weights.js";
import { mapSource } from "../checkpoint/tensor-source.js";
import { loadAdapterWeights, saveAdapter } from "../lora/adapter-io.js";
import { PeftModel } from "../lora/peft-model.js";
import type { DropoutRows } from "../lora/dropout.js";
import { Random } from "../core/random.js";
import type { Module } from "../nn/module.js";
import type { RandomStreams } from "../nn/checkpointing.js";

export interface Trainable {
  readonly model: CausalLM;
  /** The module whose parameter names are those trainableParameters() returns. */
  readonly parameterRoot: Module;
  readonly kind: "lora" | "full";
  trainableParameters(): [string, tf.Variable][];
  /** Dropout and similar train-only behaviour; `rows` keys dropout masks by micro-batch row (see lora/dropout.ts). */
  setTraining(on: boolean, rows?: DropoutRows): void;
  /** Source of dropout seeds (saved in checkpoints so a resumed run draws the same numbers). */
  readonly random: Random;
  /** Every random stream a forward pass draws from, for activation checkpointing to replay (none: nothing random). */
  readonly randomStreams?: RandomStreams;
  save(dir: string): Promise<void>;
  restore(dir: string): Promise<void>;
}

export class LoraTrainable implements Trainable {
  readonly kind = "lora";

  constructor(readonly model: PeftModel) {}

  get parameterRoot(): Module {
    return this.model.base;
  }

  trainableParameters(): [string, tf.Variable][] {
    return this.model.trainableParameters();
  }

  setTraining(on: boolean, rows?: DropoutRows): void {
    this.model.setTraining(on, rows);
  }

  get random(): Random {
    return this.model.random;
  }

  get randomStreams(): RandomStreams {
    return this.model.randomStreams;
  }

  save(dir: string): Promise<void> {
    return saveAdapter(this.model, dir);
  }

  restore(dir: string): Promise<void> {
    return loadAdapterWeights(this.model, dir, this.model.activeAdapters[0]!);
  }
}

/** Every parameter trains; checkpoints hold a full model.safetensors. */
export class FullTrainable implements Trainable {
  readonly kind = "full";
  readonly random: Random;

  constructor(
    readonly model: CausalLM,
    seed = 0,
  ) {
    for (const [, p] of model.namedParameters()) p.trainable = true;
    this.random = new Random(seed);
  }

  get parameterRoot(): Module {
    return this.model;
  }

  trainableParameters(): [string, tf.Variable][] {
    return [...this.model.namedParameters()];
  }

  setTraining(): void {
    // The decoders have no dropout.
  }

  async save(dir: string): Promise<void> {
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, p] of this.model.namedParameters()) tensors[name] = { shape: p.shape, data: p.dataSync() as Float32Array };
    await writeFileAtomic(path.join(dir, "model.safetensors"), serializeSafetensors(tensors, { format: "pt" }));
  }

  async restore(dir: string): Promise<void> {
    const tensors = await readSafetensors(path.join(dir, "model.safetensors"));
    assignWeights(this.model, mapSource(tensors), dir, { tied: this.model.config.tieWordEmbeddings });
  }
}
