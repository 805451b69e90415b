/**
 * PeftModel: a causal LM with named LoRA adapters (PEFT's get_peft_model / PeftModel and LoraModel). It
 * injects the LoRA layers, owns the adapters' settings, and decides which adapters act and which weights
 * train; the base model's weights stay frozen.
 */
import { thenRestore } from "../core/scoped.js";
import type { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { Random } from "../core/random.js";
import type { ModelConfig } from "../models/config.js";
import type { CausalLM, ForwardOptions } from "../models/causal-lm.js";
import { ensureFits, OPTIMIZER_COPIES } from "../backend/memory.js";
import { Conv1D, Linear, type LinearLike } from "../nn/layers.js";
import { QuantizedLinear } from "../quant/quantized-linear.js";
import type { RandomStreams } from "../nn/checkpointing.js";
import { getModule, Module, type ParameterSummary, trainableSummary } from "../nn/module.js";
import { fieldLabel, type LoraConfig, type LoraConfigInput, resolveLoraConfig } from "./config.js";
import { type LoraState, LoraLayer, parseAdapterParameter } from "./layer.js";
import type { DropoutRows } from "./dropout.js";
import { ModulesToSave, modulesToSaveParameters } from "./modules-to-save.js";
import { findTargets, rankAndAlpha, targetSpec } from "./targets.js";
import { addWeightedAdapter, type Combination } from "./weighted.js";

export interface AdapterInfo {
  config: LoraConfig;
  /** The resolved targets (what adapter_config.json's target_modules says). */
  targets: string[] | string;
  /** Full names of the wrapped modules. */
  modules: string[];
  /** Loaded for inference only (PEFT's is_trainable=False): never trained, even when active. */
  frozen: boolean;
  /** Seeds the adapter's own random stream: its initial A and B, then its dropout masks. */
  seed: number;
}

export interface AddAdapterOptions {
  /** Seed of the adapter's random stream (default: the PeftModel's seed). */
  seed?: number;
  /** The adapter_config.json the config was read from: errors then name it and PEFT's keys. */
  file?: string;
  /** The adapter will train: its gradients and AdamW state must fit the backend too (checked before allocating). */
  training?: boolean;
}

function parentAndName(root: Module, path: string): [Module, string] {
  const i = path.lastIndexOf(".");
  const parent = i < 0 ? root : getModule(root, path.slice(0, i));
  if (!parent) throw new Error(`no module "${path}"`);
  return [parent, path.slice(i + 1)];
}

export class PeftModel extends Module implements CausalLM {
  readonly adapters = new Map<string, AdapterInfo>();
  private readonly state: LoraState;
  /** Each adapter's copies of its modules_to_save. */
  readonly modulesToSave: ModulesToSave;

  private constructor(
    readonly base: CausalLM,
    /** The default seed of new adapters. */
    readonly seed: number,
  ) {
    super();
    this.addModule("base_model", base);
    this.state = { active: [], disabled: false, training: false, random: new Map() };
    this.modulesToSave = new ModulesToSave(base, this.state);
  }

  /** get_peft_model: wraps `base` with a first adapter (named "default" unless said otherwise). */
  static create(
    base: CausalLM,
    config: LoraConfigInput | number = {},
    options: { adapterName?: string; seed?: number; training?: boolean } = {},
  ): PeftModel {
    const peft = new PeftModel(base, options.seed ?? 0);
    peft.addAdapter(options.adapterName ?? "default", config, { training: options.training });
    peft.setAdapter(options.adapterName ?? "default");
    return peft;
  }

  /** A PeftModel without adapters yet (add them with addAdapter). */
  static emptyOn(base: CausalLM, seed = 0): PeftModel {
    return new PeftModel(base, seed);
  }

  get config(): ModelConfig {
    return this.base.config;
  }

  forward(ids: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D {
    return this.base.forward(ids, options);
  }

  get activeAdapters(): string[] {
    return [...this.state.active];
  }

  /** Dropout on (training) or off (evaluation); `rows` keys the masks by micro-batch row (see dropout.ts). */
  setTraining(training: boolean, rows?: DropoutRows): void {
    this.state.training = training;
    this.state.dropoutRows = training ? rows : undefined;
  }

  /**
   * The random stream of the adapter being trained (the first active one): its state is saved with
   * checkpoints, so a resumed run draws the same dropout masks.
   */
  get random(): Random {
    const name = this.state.active[0];
    if (name === undefined) throw new UserError("no active adapter: setAdapter(name) first");
    return this.state.random.get(name)!;
  }

  /** Every adapter's random stream (dropout), saved and rewound together: activation checkpointing replays a layer's masks. */
  readonly randomStreams: RandomStreams = {
    save: () => new Map([...this.state.random].map(([name, r]) => [name, r.getState()])),
    restore: (saved) => {
      for (const [name, state] of saved as Map<string, number>) this.state.random.get(name)?.setState(state);
    },
  };

  /** The LoRA layer at `path` (a module an adapter targets). */
  loraLayer(path: string): LoraLayer {
    const layer = getModule(this.base, path);
    if (!(layer instanceof LoraLayer)) throw new Error(`"${path}" is not a LoRA layer`);
    return layer;
  }

  private loraLayers(): [string, LoraLayer][] {
    return [...this.base.namedModules()].filter((e): e is [string, LoraLayer] => e[1] instanceof LoraLayer);
  }

  /** Adds a new adapter (inactive until setAdapter); its weights are initialised per `initLoraWeights` from its own seed. */
  addAdapter(name: string, input: LoraConfigInput | LoraConfig | number = {}, options: AddAdapterOptions = {}): AdapterInfo {
    if (this.adapters.has(name)) throw new UserError(`adapter "${name}" already exists; delete it first or choose another name`);
    if (!/^[A-Za-z0-9_-]+$/.test(name))
      throw new UserError(`adapter name "${name}": use letters, digits, "_" or "-" (it becomes part of parameter names)`);
    const where = options.file ?? "lora config";
    const label = (field: keyof LoraConfig) => fieldLabel(field, options.file !== undefined);
    const config = resolveLoraConfig(input, where);
    const targets = targetSpec(config, this.config, this.base);
    const modules = findTargets(this.base, config, targets, where, label("targetModules"));
    const wrapped = [...modules, ...this.loraLayers().map(([path]) => path)];
    const saved = modulesToSaveParameters(this.base, config.modulesToSave ?? [], wrapped, where, label("modulesToSave"));
    for (const path of modules) {
      const m = getModule(this.base, path);
      if (!(m instanceof LoraLayer || m instanceof Linear || m instanceof Conv1D || m instanceof QuantizedLinear))
        throw new UserError(`${where}: "${path}" cannot carry a LoRA adapter`);
    }
    this.checkAdapterFits(name, config, modules, where, options.training === true);
    const seed = options.seed ?? this.seed;
    const random = new Random(seed);
    for (const path of modules) {
      let layer = getModule(this.base, path)!;
      if (!(layer instanceof LoraLayer)) {
        const [parent, childName] = parentAndName(this.base, path);
        layer = new LoraLayer(layer as Linear | Conv1D | QuantizedLinear, this.state, path);
        parent.replaceChild(childName, layer);
      }
      const { r, alpha } = rankAndAlpha(config, path);
      const scaling = config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
      (layer as LoraLayer).addAdapter(
        name,
        { r, alpha, scaling, dropout: config.loraDropout, useDora: config.useDora },
        config.initLoraWeights,
        random,
      );
    }
    this.state.random.set(name, random); // dropout continues the stream that drew A and B
    const info = {
      config: { ...config, fanInFanOut: modules.some((p) => this.loraLayer(p).fanInFanOut) },
      targets,
      modules,
      frozen: false,
      seed,
    };
    this.adapters.set(name, info);
    this.modulesToSave.add(name, saved);
    this.applyTrainability();
    return info;
  }

  /**
   * The adapter's A, B (and magnitudes) must fit the backend before any is allocated (a typo'd r of 100000 must not
   * crash it); to train, so must their gradients, AdamW's two moments and the three updated copies AdamW computes
   * before writing any (OPTIMIZER_COPIES).
   */
  private checkAdapterFits(name: string, config: LoraConfig, modules: string[], where: string, training: boolean): void {
    let bytes = 0;
    for (const path of modules) {
      const layer = getModule(this.base, path) as LinearLike;
      const { r } = rankAndAlpha(config, path);
      bytes += 4 * (r * (layer.inFeatures + layer.outFeatures) + (config.useDora ? layer.outFeatures : 0));
    }
    const needs = [{ what: "adapter weights", bytes }];
    if (training) needs.push({ what: "their gradients and AdamW state", bytes: OPTIMIZER_COPIES * bytes });
    ensureFits(`${where}: adapter "${name}" (r = ${config.r} on ${modules.length} layers)`, needs, [
      "a smaller r, or fewer target modules",
    ]);
  }

  /** Marks an adapter as trainable or frozen (inference only). */
  setFrozen(name: string, frozen: boolean): void {
    const info = this.adapters.get(name);
    if (!info) throw new UserError(`no adapter "${name}"`);
    info.frozen = frozen;
    this.applyTrainability();
  }

  /** Makes `names` the active adapters (their updates add up). */
  setAdapter(names: string | string[]): void {
    const list = Array.isArray(names) ? names : [names];
    for (const n of list)
      if (!this.adapters.has(n)) throw new UserError(`no adapter "${n}"; adapters: ${[...this.adapters.keys()].join(", ") || "none"}`);
    this.state.active = list;
    this.modulesToSave.show();
    this.applyTrainability();
  }

  /** Inside withAdaptersDisabled: the base model computes alone. */
  get adaptersDisabled(): boolean {
    return this.state.disabled;
  }

  /** Runs `fn` on the base model alone (PEFT's `with model.disable_adapter():`), restoring adapters afterwards. */
  withAdaptersDisabled<T>(fn: () => T): T {
    const before = this.state.disabled;
    const restore = () => {
      this.state.disabled = before;
      this.modulesToSave.show();
    };
    this.state.disabled = true;
    this.modulesToSave.show();
    return thenRestore(fn, restore);
  }

  deleteAdapter(name: string): void {
    if (!this.adapters.has(name)) throw new UserError(`no adapter "${name}"`);
    for (const [path, layer] of this.loraLayers()) {
      if (!layer.settings.has(name)) continue;
      layer.deleteAdapter(name);
      if (layer.settings.size === 0) this.unwrap(path, layer);
    }
    this.state.active = this.state.active.filter((n) => n !== name);
    this.state.random.delete(name);
    this.modulesToSave.remove(name);
    this.adapters.delete(name);
    this.applyTrainability();
  }

  private unwrap(path: string, layer: LoraLayer): void {
    layer.releaseMerged();
    const [parent, childName] = parentAndName(this.base, path);
    parent.replaceChild(childName, layer.base);
  }

  /** PEFT's add_weighted_adapter (see weighted.ts): "cat" is exact, "linear" mixes A and B of equal ranks. */
  addWeightedAdapter(adapters: string[], weights: number[], newName: string, combination: Combination = "cat"): void {
    addWeightedAdapter(this, adapters, weights, newName, combination);
  }

  /** Which parameters train: the active adapters' A, B (and DoRA magnitudes), their modules_to_save, and biases per `bias`. */
  private applyTrainability(): void {
    const active = new Set(this.state.active);
    const training = this.state.active.filter((n) => !this.adapters.get(n)!.frozen);
    const biasModes = new Set(training.map((n) => this.adapters.get(n)!.config.bias));
    for (const [name, p] of this.base.namedParameters()) {
      const adapter = parseAdapterParameter(name)?.adapter;
      if (adapter !== undefined) p.trainable = active.has(adapter) && !this.adapters.get(adapter)!.frozen;
      else if (name.endsWith(".bias") && biasModes.has("all")) p.trainable = true;
      else if (name.endsWith(".base_layer.bias") && biasModes.has("lora_only")) p.trainable = true;
      else p.trainable = false;
    }
    for (const p of this.modulesToSave.liveFor(training)) p.trainable = true;
  }

  trainableParameters(): [string, tf.Variable][] {
    return [...this.base.namedParameters()].filter(([, p]) => p.trainable);
  }

  /** The parameters adapter `name` computes with: the base model's and the adapter's own (other adapters' left out). */
  *parametersOf(name: string): Generator<[string, tf.Variable]> {
    for (const [param, p] of this.base.namedParameters()) {
      const adapter = parseAdapterParameter(param)?.adapter;
      if (adapter === undefined || adapter === name) yield [param, p];
    }
  }

  /** PEFT's print_trainable_parameters line. */
  trainableSummary(): ParameterSummary {
    return trainableSummary(this.base.namedParameters(), this.base.namedStoredWeights());
  }

  /** Folds the active adapters into the base weights. */
  merge(names: string[] = this.state.active): void {
    for (const [, layer] of this.loraLayers()) layer.merge(names);
  }

  unmerge(): void {
    for (const [, layer] of this.loraLayers()) layer.unmerge();
  }

  /** Merges the active adapters and removes every LoRA layer: a plain model with the updated weights. */
  mergeAndUnload(): CausalLM {
    this.merge();
    for (const [path, layer] of this.loraLayers()) {
      layer.releaseMerged(); // keep the merged weights: deleting must not unmerge
      for (const name of layer.adapterNames()) layer.deleteAdapter(name);
      this.unwrap(path, layer);
    }
    this.adapters.clear();
    this.state.active = [];
    this.state.random.clear();
    this.modulesToSave.clear();
    for (const [, p] of this.base.namedParameters()) p.trainable = false;
    return this.base;
  }
}
