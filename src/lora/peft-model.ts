/**
 * PeftModel: a causal LM with named LoRA adapters (PEFT's get_peft_model / PeftModel). It owns
 * the LoRA layers it injected and the adapters' settings; the base model's weights stay frozen.
 */
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import type { ModelConfig } from "../models/config.js";
import type { CausalLM, ForwardOptions } from "../models/causal-lm.js";
import { Conv1D, Linear } from "../nn/layers.js";
import { getModule, Module, type ParameterSummary, trainableSummary } from "../nn/module.js";
import { Random } from "../core/random.js";
import { type LoraConfig, type LoraConfigInput, resolveLoraConfig } from "./config.js";
import { type LoraState, LoraLayer, parseAdapterParameter } from "./layer.js";
import { findTargets, rankAndAlpha, targetSpec } from "./targets.js";

export interface AdapterInfo {
  config: LoraConfig;
  /** The resolved targets (what adapter_config.json's target_modules says). */
  targets: string[] | string;
  /** Full names of the wrapped modules. */
  modules: string[];
  /** Loaded for inference only (PEFT's is_trainable=False): never trained, even when active. */
  frozen: boolean;
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
  /**
   * modules_to_save: each adapter trains its own copy of these modules (PEFT's ModulesToSaveWrapper).
   * The model's variables hold the values of one owner at a time (`liveOwner`, "" = the base model's
   * own); the other owners' values wait here and are swapped in when adapters change.
   */
  private readonly moduleCopies = new Map<string, Map<string, tf.Tensor>>();
  private readonly liveOwner = new Map<string, string>();

  private constructor(
    readonly base: CausalLM,
    seed: number,
  ) {
    super();
    this.addModule("base_model", base);
    this.state = { active: [], disabled: false, training: false, random: new Random(seed) };
  }

  /** get_peft_model: wraps `base` with a first adapter (named "default" unless said otherwise). */
  static create(base: CausalLM, config: LoraConfigInput | number = {}, options: { adapterName?: string; seed?: number } = {}): PeftModel {
    const peft = new PeftModel(base, options.seed ?? 0);
    peft.addAdapter(options.adapterName ?? "default", config);
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

  /** Dropout on (training) or off (evaluation). */
  setTraining(training: boolean): void {
    this.state.training = training;
  }

  get random(): Random {
    return this.state.random;
  }

  private loraLayers(): [string, LoraLayer][] {
    return [...this.base.namedModules()].filter((e): e is [string, LoraLayer] => e[1] instanceof LoraLayer);
  }

  /** Adds a new adapter (inactive until setAdapter); its weights are initialised per `initLoraWeights`. */
  addAdapter(name: string, input: LoraConfigInput | number | LoraConfig = {}): AdapterInfo {
    if (this.adapters.has(name)) throw new UserError(`adapter "${name}" already exists; delete it first or choose another name`);
    if (!/^[A-Za-z0-9_-]+$/.test(name))
      throw new UserError(`adapter name "${name}": use letters, digits, "_" or "-" (it becomes part of parameter names)`);
    const config = resolveLoraConfig(input as LoraConfigInput);
    const targets = targetSpec(config, this.config, this.base);
    const unique = findTargets(this.base, config, targets);
    for (const path of unique) {
      let layer = getModule(this.base, path);
      if (!(layer instanceof LoraLayer)) {
        if (!(layer instanceof Linear || layer instanceof Conv1D))
          throw new UserError(`lora config: "${path}" cannot carry a LoRA adapter`);
        const [parent, childName] = parentAndName(this.base, path);
        layer = new LoraLayer(layer, this.state);
        parent.replaceChild(childName, layer);
      }
      const { r, alpha } = rankAndAlpha(config, path);
      const scaling = config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
      (layer as LoraLayer).addAdapter(
        name,
        { r, alpha, scaling, dropout: config.loraDropout, useDora: config.useDora },
        config.initLoraWeights,
        this.state.random,
      );
    }
    const info = {
      config: { ...config, fanInFanOut: unique.some((p) => (getModule(this.base, p) as LoraLayer).fanInFanOut) },
      targets,
      modules: unique,
      frozen: false,
    };
    this.adapters.set(name, info);
    this.copyModulesToSave(name);
    this.applyTrainability();
    return info;
  }

  /** Full parameter names of the modules an adapter saves whole (PEFT: module name equals or ends with ".<entry>"). */
  private modulesToSaveParams(name: string): string[] {
    const entries = this.adapters.get(name)?.config.modulesToSave ?? [];
    const out: string[] = [];
    for (const [path, m] of this.base.namedModules()) {
      if (path && entries.some((e) => path === e || path.endsWith(`.${e}`))) for (const [param] of m.namedParameters(path)) out.push(param);
    }
    return out;
  }

  private copyModulesToSave(name: string): void {
    const params = new Map(this.base.namedParameters());
    for (const param of this.modulesToSaveParams(name)) {
      if (!this.liveOwner.has(param)) {
        this.liveOwner.set(param, "");
        this.moduleCopies.set(param, new Map());
      }
      const original = this.liveOwner.get(param) === "" ? params.get(param)! : this.moduleCopies.get(param)!.get("")!;
      this.moduleCopies.get(param)!.set(name, tf.keep(original.clone()));
    }
    this.syncModulesToSave();
  }

  /** Puts into each modules_to_save parameter the values of the first active adapter that has a copy (or the base's). */
  private syncModulesToSave(): void {
    const params = new Map(this.base.namedParameters());
    for (const [param, copies] of this.moduleCopies) {
      const wanted = this.state.disabled ? "" : (this.state.active.find((a) => copies.has(a)) ?? "");
      const live = this.liveOwner.get(param)!;
      if (wanted === live) continue;
      const variable = params.get(param)!;
      copies.set(live, tf.keep(variable.clone()));
      variable.assign(copies.get(wanted)!);
      copies.get(wanted)!.dispose();
      copies.delete(wanted);
      this.liveOwner.set(param, wanted);
    }
  }

  /** The values an adapter saves for its modules_to_save (whether or not it is active). */
  modulesToSaveValues(name: string): [string, tf.Tensor][] {
    const params = new Map(this.base.namedParameters());
    return this.modulesToSaveParams(name).map((param) => [
      param,
      this.liveOwner.get(param) === name ? params.get(param)! : this.moduleCopies.get(param)!.get(name)!,
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
    this.syncModulesToSave();
    this.applyTrainability();
  }

  /** Runs `fn` on the base model alone (PEFT's `with model.disable_adapter():`), restoring adapters afterwards. */
  withAdaptersDisabled<T>(fn: () => T): T {
    const before = this.state.disabled;
    const restore = () => {
      this.state.disabled = before;
      this.syncModulesToSave();
    };
    this.state.disabled = true;
    this.syncModulesToSave();
    try {
      const out = fn();
      if (out instanceof Promise) return out.finally(restore) as T;
      restore();
      return out;
    } catch (e) {
      restore();
      throw e;
    }
  }

  deleteAdapter(name: string): void {
    const info = this.adapters.get(name);
    if (!info) throw new UserError(`no adapter "${name}"`);
    for (const [path, layer] of this.loraLayers()) {
      if (!layer.settings.has(name)) continue;
      layer.deleteAdapter(name);
      if (layer.settings.size === 0) this.unwrap(path, layer);
    }
    this.state.active = this.state.active.filter((n) => n !== name);
    this.syncModulesToSave(); // the deleted adapter's module values leave the live variables
    for (const [param, copies] of this.moduleCopies) {
      copies.get(name)?.dispose();
      copies.delete(name);
      if (copies.size === 0 && this.liveOwner.get(param) === "") {
        this.moduleCopies.delete(param);
        this.liveOwner.delete(param);
      }
    }
    this.adapters.delete(name);
    this.applyTrainability();
  }

  private unwrap(path: string, layer: LoraLayer): void {
    layer.releaseMerged();
    const [parent, childName] = parentAndName(this.base, path);
    parent.replaceChild(childName, layer.base);
  }

  /**
   * PEFT's add_weighted_adapter. "cat" is exact: the new update is Σ wᵢ·scalingᵢ·BᵢAᵢ (ranks add up).
   * "linear" needs equal ranks and mixes A and B separately (A = Σ √wᵢ·scalingᵢ·Aᵢ, B = Σ √wᵢ·Bᵢ), as PEFT does.
   */
  addWeightedAdapter(adapters: string[], weights: number[], newName: string, combination: "cat" | "linear" = "cat"): void {
    if (adapters.length === 0 || adapters.length !== weights.length)
      throw new UserError("addWeightedAdapter: give as many weights as adapters (at least one)");
    const infos = adapters.map((a) => {
      const info = this.adapters.get(a);
      if (!info) throw new UserError(`no adapter "${a}"`);
      return info;
    });
    const first = infos[0]!.config;
    const modules = [...new Set(infos.flatMap((i) => i.modules))];
    const layersOf = modules.map((m) => getModule(this.base, m) as LoraLayer);
    const ranks = layersOf.map((layer) => adapters.reduce((sum, a) => sum + (layer.settings.get(a)?.r ?? 0), 0));
    if (combination === "linear") {
      const rs = new Set(
        infos.flatMap((info, k) => info.modules.map((m) => (getModule(this.base, m) as LoraLayer).settings.get(adapters[k]!)!.r)),
      );
      if (rs.size !== 1)
        throw new UserError(`addWeightedAdapter "linear" needs adapters of one rank; found ranks ${[...rs].join(", ")} (use "cat")`);
    }
    const r = combination === "linear" ? layersOf[0]!.settings.get(adapters[0]!)!.r : Math.max(...ranks);
    const rankPattern: Record<string, number> = {};
    if (combination === "cat")
      modules.forEach((m, i) => {
        if (ranks[i] !== r) rankPattern[m] = ranks[i]!;
      });
    // The combined update carries its scaling inside A, so alpha = r gives scaling 1.
    this.addAdapter(newName, {
      ...first,
      r,
      loraAlpha: r,
      rankPattern,
      alphaPattern: Object.fromEntries(Object.entries(rankPattern)),
      targetModules: modules,
      useDora: false,
      useRslora: false,
      initLoraWeights: true,
      layersToTransform: null,
    });
    tf.tidy(() => {
      for (const layer of layersOf) {
        const parts = adapters
          .map((a, k) => ({ s: layer.settings.get(a), w: layer.settings.has(a) ? layer.weightsOf(a) : undefined, weight: weights[k]! }))
          .filter((p) => p.s !== undefined && p.w !== undefined);
        const target = layer.weightsOf(newName);
        if (combination === "linear") {
          target.a.assign(tf.addN(parts.map((p) => p.w!.a.mul(Math.sqrt(Math.abs(p.weight)) * p.s!.scaling))));
          target.b.assign(tf.addN(parts.map((p) => p.w!.b.mul(Math.sign(p.weight) * Math.sqrt(Math.abs(p.weight))))));
        } else {
          target.a.assign(
            tf.concat(
              parts.map((p) => p.w!.a.mul(p.weight * p.s!.scaling)),
              0,
            ),
          );
          target.b.assign(
            tf.concat(
              parts.map((p) => p.w!.b),
              1,
            ),
          );
        }
      }
    });
  }

  /** Which parameters train: the active adapters' A, B (and DoRA magnitudes), plus biases per `bias`. */
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
    const params = new Map(this.base.namedParameters());
    for (const [param, owner] of this.liveOwner) if (owner !== "" && training.includes(owner)) params.get(param)!.trainable = true;
  }

  trainableParameters(): [string, tf.Variable][] {
    return [...this.base.namedParameters()].filter(([, p]) => p.trainable);
  }

  /** PEFT's print_trainable_parameters line. */
  trainableSummary(): ParameterSummary {
    return trainableSummary(this.base.namedParameters());
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
    for (const copies of this.moduleCopies.values()) for (const t of copies.values()) t.dispose();
    this.moduleCopies.clear();
    this.liveOwner.clear();
    for (const [, p] of this.base.namedParameters()) p.trainable = false;
    return this.base;
  }
}
