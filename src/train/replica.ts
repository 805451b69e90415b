/**
 * A replica of what a Trainer trains, for a data-parallel worker: the recipe of its structure (model config,
 * adapters) as plain data, built again on the other side, and a fingerprint of the structure that both sides
 * compare before any weight is copied. A model the recipe cannot rebuild exactly (merged adapters, layers of
 * another kind such as quantized ones) is reported with the reason instead.
 */
import type { ModelConfig } from "../models/config.js";
import { createModel } from "../models/load.js";
import type { LoraConfig } from "../lora/config.js";
import { PeftModel } from "../lora/peft-model.js";
import type { Module } from "../nn/module.js";
import { FullTrainable, LoraTrainable, type Trainable } from "./trainable.js";

interface AdapterRecipe {
  name: string;
  config: LoraConfig;
  seed: number;
  frozen: boolean;
}

export type ReplicaRecipe =
  { kind: "full"; config: ModelConfig } | { kind: "lora"; config: ModelConfig; seed: number; adapters: AdapterRecipe[]; active: string[] };

/** The recipe of `trainable`, or why it cannot be replicated. */
export function replicaRecipe(trainable: Trainable): ReplicaRecipe | string {
  if (!trainable.model.namedStoredWeights().next().done) return "a quantized base model (QLoRA) does not replicate into workers";
  if (trainable instanceof FullTrainable) return { kind: "full", config: trainable.model.config };
  if (!(trainable instanceof LoraTrainable)) return "only LoRA and full fine-tuning replicate into workers";
  const peft = trainable.model;
  const adapters: AdapterRecipe[] = [];
  for (const [name, info] of peft.adapters) {
    if (info.modules.some((path) => peft.loraLayer(path).merged.length > 0)) return `adapter "${name}" is merged into the weights`;
    adapters.push({ name, config: info.config, seed: info.seed, frozen: info.frozen });
  }
  return { kind: "lora", config: peft.config, seed: peft.seed, adapters, active: peft.activeAdapters };
}

/** Builds the recipe's model with placeholder weights (copy the weights in afterwards). */
export function buildReplica(recipe: ReplicaRecipe): Trainable {
  const base = createModel(recipe.config);
  if (recipe.kind === "full") return new FullTrainable(base);
  const peft = PeftModel.emptyOn(base, recipe.seed);
  for (const { name, config, seed, frozen } of recipe.adapters) {
    peft.addAdapter(name, config, { seed });
    if (frozen) peft.setFrozen(name, true);
  }
  if (recipe.active.length > 0) peft.setAdapter(recipe.active);
  return new LoraTrainable(peft);
}

/** Every module's path and kind, every parameter's path, shape and trainability: equal fingerprints, equal computations. */
export function fingerprint(root: Module): string[] {
  const modules = [...root.namedModules()].map(([path, m]) => `${path}: ${m.constructor.name}`);
  const params = [...root.namedParameters()].map(([path, p]) => `${path} [${p.shape.join(", ")}]${p.trainable ? " trains" : ""}`);
  return [...modules, ...params];
}

/** The first line where two fingerprints differ, for the message that says why a replica is not possible. */
export function firstDifference(mine: string[], theirs: string[]): string | undefined {
  for (let i = 0; i < Math.max(mine.length, theirs.length); i++) {
    if (mine[i] !== theirs[i]) return `here "${mine[i] ?? "(nothing)"}", in a replica "${theirs[i] ?? "(nothing)"}"`;
  }
  return undefined;
}
