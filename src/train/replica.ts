/**
 * A replica of what a Trainer trains or an evaluation scores, for a data-parallel worker: the recipe of its
 * structure (model config, adapters and which compute) as plain data, built again on the other side, and a
 * fingerprint of the structure that both sides compare before any weight is copied. A model the recipe cannot
 * rebuild exactly (merged adapters, layers of another kind such as quantized ones) is reported with the reason
 * instead.
 */
import type { CausalLM } from "../models/causal-lm.js";
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

type LoraRecipe = {
  kind: "lora";
  config: ModelConfig;
  seed: number;
  adapters: AdapterRecipe[];
  active: string[];
  /** The adapters are switched off (PEFT's disable_adapter()): the base model computes alone. */
  disabled: boolean;
};

/** "full" and "lora" train; "model" only computes (a plain model that an evaluation scores). */
export type ReplicaRecipe = { kind: "full"; config: ModelConfig } | LoraRecipe | { kind: "model"; config: ModelConfig };

const QUANTIZED = "a quantized base model (QLoRA) does not replicate into workers";

function loraRecipe(peft: PeftModel): LoraRecipe | string {
  const adapters: AdapterRecipe[] = [];
  for (const [name, info] of peft.adapters) {
    if (info.modules.some((path) => peft.loraLayer(path).merged.length > 0)) return `adapter "${name}" is merged into the weights`;
    adapters.push({ name, config: info.config, seed: info.seed, frozen: info.frozen });
  }
  return { kind: "lora", config: peft.config, seed: peft.seed, adapters, active: peft.activeAdapters, disabled: peft.adaptersDisabled };
}

/** The recipe of `trainable`, or why it cannot be replicated. */
export function replicaRecipe(trainable: Trainable): ReplicaRecipe | string {
  if (!trainable.model.namedStoredWeights().next().done) return QUANTIZED;
  if (trainable instanceof FullTrainable) return { kind: "full", config: trainable.model.config };
  if (!(trainable instanceof LoraTrainable)) return "only LoRA and full fine-tuning replicate into workers";
  return loraRecipe(trainable.model);
}

/** The recipe of a model to evaluate (with its adapters, if any, as they are now), or why it cannot be replicated. */
export function inferenceRecipe(model: CausalLM): ReplicaRecipe | string {
  if (!model.namedStoredWeights().next().done) return QUANTIZED;
  return model instanceof PeftModel ? loraRecipe(model) : { kind: "model", config: model.config };
}

/** The module a recipe's parameters are named from (as replicas.ts copies them). */
export function parameterRootOf(model: CausalLM): Module {
  return model instanceof PeftModel ? model.base : model;
}

/** A built replica: what it computes with, what trains (for the training recipes) and the state it computes in. */
export interface Replica {
  model: CausalLM;
  /** The module whose named parameters the weights are copied into. */
  root: Module;
  trainable?: Trainable;
  /** Runs `fn` with the recipe's adapters switched as in the original. */
  within<T>(fn: () => T): T;
}

/** Builds the recipe's model with placeholder weights (copy the weights in afterwards). */
export function buildReplica(recipe: ReplicaRecipe): Replica {
  const base = createModel(recipe.config);
  const plainly = <T>(fn: () => T) => fn();
  if (recipe.kind === "model") return { model: base, root: base, within: plainly };
  if (recipe.kind === "full") return { model: base, root: base, trainable: new FullTrainable(base), within: plainly };
  const peft = PeftModel.emptyOn(base, recipe.seed);
  for (const { name, config, seed, frozen } of recipe.adapters) {
    peft.addAdapter(name, config, { seed });
    if (frozen) peft.setFrozen(name, true);
  }
  if (recipe.active.length > 0) peft.setAdapter(recipe.active);
  const within = recipe.disabled ? <T>(fn: () => T) => peft.withAdaptersDisabled(fn) : plainly;
  return { model: peft, root: base, trainable: new LoraTrainable(peft), within };
}

/**
 * Every module's path and kind, every parameter's path, shape and (for recipes that train) trainability: equal
 * fingerprints, equal computations.
 */
export function fingerprint(root: Module, recipe: ReplicaRecipe): string[] {
  const trains = recipe.kind !== "model";
  const modules = [...root.namedModules()].map(([path, m]) => `${path}: ${m.constructor.name}`);
  const params = [...root.namedParameters()].map(([path, p]) => `${path} [${p.shape.join(", ")}]${trains && p.trainable ? " trains" : ""}`);
  return [...modules, ...params];
}

/** The first line where two fingerprints differ, for the message that says why a replica is not possible. */
export function firstDifference(mine: string[], theirs: string[]): string | undefined {
  for (let i = 0; i < Math.max(mine.length, theirs.length); i++) {
    if (mine[i] !== theirs[i]) return `here "${mine[i] ?? "(nothing)"}", in a replica "${theirs[i] ?? "(nothing)"}"`;
  }
  return undefined;
}
