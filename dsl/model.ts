/**
 * The DSL's model handles:
 *
 *   const base = await model("path/or/hub-id");
 *   const run = await base.lora({ r: 8, alpha: 16 }).train(ds, { epochs: 3 });
 *   await run.model.eval(test, ["perplexity"]);
 *
 * A base model carries every LoRA adapter trained from it (PEFT's multi-adapter model): each
 * `.lora(...)` gets its own named adapter, and a handle computes with its own adapter in each call.
 */
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { UserError } from "../src/core/errors.js";
import type { CausalLM } from "../src/models/causal-lm.js";
import { loadModel, type LoadedModel, type LoadOptions } from "../src/models/load.js";
import { saveModelDirectory } from "../src/models/save.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { parseAdapterParameter } from "../src/lora/layer.js";
import { loadAdapter, saveAdapter } from "../src/lora/adapter-io.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import { countParameters, type StoredWeight } from "../src/nn/module.js";
import { formatBytes } from "../src/backend/memory.js";
import { describeWeights } from "../src/models/memory-estimate.js";
import { weightsByFormat } from "../src/train/run-memory.js";
import { floatCopy } from "../src/lora/float-copy.js";
import type { DataInput } from "./data.js";
import { type Reopened, Run, type TrainedModel, type TrainOptions } from "./run.js";
import { type EvalMetrics, EvalResult, type Metric } from "./evaluation.js";
import { type EvalOptions, type GenerateOptions, ModelView } from "./model-view.js";

export { type EvalMetrics, EvalResult, type Metric, type GenerateOptions, type EvalOptions, ModelView };
import { FullTrainable, LoraTrainable, type Trainable } from "../src/train/trainable.js";

let adapterCounter = 0;

/** A loaded base model. */
export class Model extends ModelView {
  private peft: PeftModel | undefined;

  constructor(
    readonly ref: string,
    readonly loaded: LoadedModel,
  ) {
    super();
  }

  get base(): Model {
    return this;
  }

  get tokenizer() {
    if (!this.loaded.tokenizer) throw new UserError(`${this.loaded.dir}: the model has no tokenizer.json; use token ids`);
    return this.loaded.tokenizer;
  }

  /** Parameters of the base model itself (adapters attached to it not counted). */
  get parameters(): number {
    let n = 0;
    for (const [, p] of this.baseParameters()) n += p.size;
    for (const [, w] of this.loaded.model.namedStoredWeights()) n += w.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  protected withWeights<T>(fn: (m: CausalLM) => T): T {
    return this.peft ? this.peft.withAdaptersDisabled(() => fn(this.peft!)) : fn(this.loaded.model);
  }

  describe(): [string, unknown][] {
    const c = this.loaded.config;
    return [
      ["model", this.ref],
      ["type", c.modelType],
      ["layers", c.numLayers],
      ["hidden", c.hiddenSize],
      ["vocab", c.vocabSize],
      ["parameters", this.parameters.toLocaleString("en-US")],
      ["weights", describeWeights(weightsByFormat(this.baseParameters(), this.loaded.model.namedStoredWeights()), formatBytes)],
    ];
  }

  /** The base model's own parameters (adapters attached to it left out). */
  private *baseParameters(): Generator<[string, tf.Variable]> {
    for (const entry of this.loaded.model.namedParameters()) if (!parseAdapterParameter(entry[0])) yield entry;
  }

  /** The shared multi-adapter model (created on the first LoRA). */
  peftModel(): PeftModel {
    return (this.peft ??= PeftModel.emptyOn(this.loaded.model));
  }

  /** A new LoRA adapter on this model: `base.lora(8)` or `base.lora({ r: 8, alpha: 16, targets: [...] })`. */
  lora(config: LoraConfigInput | number = {}): LoraBuilder {
    return new LoraBuilder(this, typeof config === "number" ? { r: config } : config);
  }

  /**
   * QLoRA (Dettmers et al. 2023): a LoRA adapter on this model with its decoder projections stored in NF4 with double
   * quantization, on every linear layer unless `targets` says otherwise. The NF4 copy is loaded from the model's
   * directory on first use and shared by every `.qlora(…)` (a model loaded with `quantize: "nf4"` is used as it is).
   */
  qlora(config: LoraConfigInput | number = {}): LoraBuilder {
    const given = typeof config === "number" ? { r: config } : config;
    const targets = given.targets === undefined && given.targetModules === undefined ? { targets: "all-linear" } : {};
    return new LoraBuilder(this, { ...targets, ...given }, "qlora");
  }

  private nf4: Promise<Model> | undefined;

  /** This model with NF4 projections: itself when loaded so, else a copy loaded once with quantize "nf4-dq". */
  quantized(): Promise<Model> {
    const q = this.loaded.quantize;
    if (q === "nf4" || q === "nf4-dq") return Promise.resolve(this);
    return (this.nf4 ??= loadModel(this.loaded.dir, { quantize: "nf4-dq" }).then((loaded) => new Model(this.ref, loaded)));
  }

  /** Full fine-tuning of a copy of this model (the baseline LoRA is compared with). */
  full(): FullBuilder {
    return new FullBuilder(this);
  }

  /** Loads a PEFT adapter directory onto this model. */
  async loadAdapter(dir: string, options: { trainable?: boolean } = {}): Promise<LoraModel> {
    const name = `adapter_${++adapterCounter}`;
    await loadAdapter(this.peftModel(), dir, { name, trainable: options.trainable });
    return new LoraModel(this, name);
  }

  /** A float32 weight copy of the base (for full fine-tuning), adapters excluded; compact weights are widened. */
  cloneWeights(): CausalLM {
    return this.withWeights((m) => floatCopy(this.loaded.model, this.loaded));
  }
}

/** A trained or loaded LoRA adapter on a base model. */
export class LoraModel extends ModelView implements TrainedModel {
  readonly kind = "lora";

  constructor(
    readonly base: Model,
    readonly adapterName: string,
  ) {
    super();
  }

  protected withWeights<T>(fn: (m: CausalLM) => T): T {
    const peft = this.base.peftModel();
    const before = peft.activeAdapters;
    peft.setAdapter(this.adapterName);
    try {
      return fn(peft);
    } finally {
      if (before.length) peft.setAdapter(before);
    }
  }

  get config() {
    return this.base.peftModel().adapters.get(this.adapterName)!.config;
  }

  get label(): string {
    return `${isNF4(this.base.loaded) ? "QLoRA" : "LoRA"} r=${this.config.r}`;
  }

  /** The base model's parameters and this adapter's (other adapters on the same base excluded). */
  namedParameters(): Generator<[string, tf.Variable]> {
    return this.base.peftModel().parametersOf(this.adapterName);
  }

  selectForTraining(): void {
    this.base.peftModel().setAdapter(this.adapterName);
  }

  trainable(): Trainable {
    this.selectForTraining();
    return new LoraTrainable(this.base.peftModel());
  }

  /** The base's compact weights (QLoRA: its NF4 projections). */
  namedStoredWeights(): Generator<[string, StoredWeight]> {
    return this.base.loaded.model.namedStoredWeights();
  }

  recordedConfig(): Record<string, unknown> {
    const quantize = this.base.loaded.quantize;
    return { lora: this.config, ...(quantize ? { quantize } : {}) };
  }

  async saveToRun(dir: string): Promise<void> {
    await this.save(path.join(dir, "adapter"));
  }

  discard(): void {
    this.base.peftModel().deleteAdapter(this.adapterName);
  }

  describe(): [string, unknown][] {
    const c = this.config;
    return [
      ["base", this.base.ref],
      ["adapter", this.adapterName],
      ["r", c.r],
      ["alpha", c.loraAlpha],
      ["targets", JSON.stringify(this.base.peftModel().adapters.get(this.adapterName)!.targets)],
    ];
  }

  /** Saves the adapter in PEFT's format. */
  async save(dir: string): Promise<string> {
    const peft = this.base.peftModel();
    await this.withWeights(() => saveAdapter(peft, dir, this.adapterName));
    return dir;
  }

  /**
   * A plain model with this adapter merged into a float32 copy of the weights, saved as an HF checkpoint (also for
   * a QLoRA adapter: its NF4 base is widened into the copy, never re-quantized).
   */
  async saveMerged(dir: string): Promise<string> {
    const peft = this.base.peftModel();
    // Under this adapter's view: its modules_to_save copies and the biases it trained are what the copy takes.
    const merged = this.withWeights(() => {
      const copy = floatCopy(peft.base, this.base.loaded);
      const params = new Map(copy.namedParameters());
      for (const path of peft.adapters.get(this.adapterName)!.modules) {
        const layer = peft.loraLayer(path);
        const weight = params.get(`${path}.weight`)!;
        tf.tidy(() => {
          const delta = layer.mergedDelta(this.adapterName); // [out, in]
          weight.assign(weight.add(layer.fanInFanOut ? delta.transpose() : delta));
        });
      }
      return copy;
    });
    await saveModelDirectory(merged, this.base.loaded.dir, dir);
    merged.dispose();
    return dir;
  }
}

/** A fully fine-tuned copy of a base model. */
export class FullModel extends ModelView implements TrainedModel {
  readonly kind = "full";
  readonly label = "full";

  constructor(
    readonly base: Model,
    readonly weights: CausalLM,
  ) {
    super();
  }

  protected withWeights<T>(fn: (m: CausalLM) => T): T {
    return fn(this.weights);
  }

  namedParameters(): Generator<[string, tf.Variable]> {
    return this.weights.namedParameters();
  }

  namedStoredWeights(): Generator<[string, StoredWeight]> {
    return this.weights.namedStoredWeights();
  }

  selectForTraining(): void {
    // The copy is this model's alone.
  }

  trainable(seed: number): Trainable {
    return new FullTrainable(this.weights, seed);
  }

  recordedConfig(): Record<string, unknown> {
    return {};
  }

  async saveToRun(): Promise<void> {
    // The registry keeps no copy of full weights (as large as the model); `save(dir)` writes them.
  }

  discard(): void {
    this.weights.dispose();
  }

  describe(): [string, unknown][] {
    return [
      ["base", this.base.ref],
      ["fine-tuning", "full"],
      ["parameters", countParameters(this.weights).toLocaleString("en-US")],
    ];
  }

  async save(dir: string): Promise<string> {
    await saveModelDirectory(this.weights, this.base.loaded.dir, dir);
    return dir;
  }
}

/** A run of either kind of fine-tuning (what compare and sweep take). */
export type TrainedRun = Run<LoraModel | FullModel>;

/** `base.lora(cfg)` / `base.qlora(cfg)`: not trained yet; `.train(ds, opts)` trains a new adapter and resolves to a Run. */
export class LoraBuilder {
  constructor(
    readonly base: Model,
    readonly config: LoraConfigInput,
    /** "qlora": the adapter goes on the base's NF4 copy (Model.quantized). */
    readonly kind: "lora" | "qlora" = "lora",
  ) {}

  async train(data: DataInput, options: TrainOptions = {}): Promise<Run<LoraModel>> {
    return this.trainRun(data, options);
  }

  /** A new adapter trained as a run, or (`reopened`) a recorded run continued. */
  async trainRun(data: DataInput, options: TrainOptions, reopened?: Reopened): Promise<Run<LoraModel>> {
    const base = this.kind === "qlora" ? await this.base.quantized() : this.base;
    const create = (seed: number) => {
      const name = `lora_${++adapterCounter}`;
      // The adapter's initial weights and dropout masks come from the run's seed, not from what the session did before.
      base.peftModel().addAdapter(name, { baseModelNameOrPath: base.ref, ...this.config }, { seed, training: true });
      return new LoraModel(base, name);
    };
    return Run.start(base, create, data, options, reopened);
  }
}

/** `base.full()`: `.train(ds, opts)` fine-tunes every weight of a copy of the base and resolves to a Run. */
export class FullBuilder {
  readonly kind = "full";
  constructor(readonly base: Model) {}

  async train(data: DataInput, options: TrainOptions = {}): Promise<Run<FullModel>> {
    return this.trainRun(data, options);
  }

  trainRun(data: DataInput, options: TrainOptions, reopened?: Reopened): Promise<Run<FullModel>> {
    return Run.start(this.base, () => new FullModel(this.base, this.base.cloneWeights()), data, options, reopened);
  }
}

const isNF4 = (loaded: LoadedModel) => loaded.quantize === "nf4" || loaded.quantize === "nf4-dq";

/**
 * Loads a model: a local directory, a shipped model's name or a Hugging Face hub id. `quantize` stores the decoder
 * projections compactly ("nf4", "nf4-dq", "f16", "bf16"; see loadModel).
 */
export async function model(ref: string, options: { backend?: string } & LoadOptions = {}): Promise<Model> {
  const { backend, ...load } = options;
  await initBackend(backend);
  return new Model(ref, await loadModel(ref, load));
}
