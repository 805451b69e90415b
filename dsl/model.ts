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
import { createModel, loadModel, type LoadedModel } from "../src/models/load.js";
import { saveModelDirectory } from "../src/models/save.js";
import { generate as generateIds, type GenerationOptions } from "../src/models/generation.js";
import * as aq from "arquero";
import { evaluate, type EvalScores, type Metric } from "../src/metrics/evaluate.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { parseAdapterParameter } from "../src/lora/layer.js";
import { loadAdapter, saveAdapter } from "../src/lora/adapter-io.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import { countParameters } from "../src/nn/module.js";
import { type DataInput, dataRows, toExamples } from "./data.js";
import { htmlKeyValues, textKeyValues } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import { type Reopened, Run, type TrainedModel, type TrainOptions } from "./run.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../src/train/trainable.js";

export type { Metric };

/** The metrics' scores (src/metrics/evaluate.ts), with the generation examples as an arquero table. */
export interface EvalResult extends Omit<EvalScores, "examples"> {
  /** Per-example prompt, completion and generation of generation metrics. */
  examples?: aq.ColumnTable;
}

export interface GenerateOptions extends Partial<Omit<GenerationOptions, "eosTokenIds">> {
  /** Return token ids as well as text. */
  ids?: boolean;
}

/** What every handle can do: evaluate, generate, save — with its own adapter (or none) active. */
export abstract class ModelView {
  /** The loaded base model this view computes with. */
  abstract get base(): Model;

  /** Runs `fn` on the model computing with this view's weights (its adapter alone, or none). */
  protected abstract withWeights<T>(fn: (m: CausalLM) => T): T;

  abstract describe(): [string, unknown][];

  async eval(data: DataInput, metrics: Metric[] | Metric = ["perplexity"]): Promise<EvalResult> {
    const loaded = this.base.loaded;
    const input = { examples: () => toExamples(data, loaded.tokenizer, loaded.config.vocabSize), rows: () => dataRows(data) };
    const { examples, ...scores } = this.withWeights((m) =>
      evaluate(m, input, Array.isArray(metrics) ? metrics : [metrics], { tokenizer: loaded.tokenizer, eosTokenIds: loaded.eosTokenIds }),
    );
    return examples ? { ...scores, examples: aq.from(examples) } : scores;
  }

  async generate(prompt: string | number[], options: GenerateOptions = {}): Promise<{ text: string; ids: number[] }> {
    const ids = typeof prompt === "string" ? this.base.tokenizer.encode(prompt) : prompt;
    const out = this.withWeights((m) => generateIds(m, ids, { maxNewTokens: 32, ...options, eosTokenIds: this.base.loaded.eosTokenIds }));
    return { text: this.base.tokenizer.decode(out.ids), ids: out.ids };
  }

  [DISPLAY](): MimeBundle {
    const rows = this.describe();
    return { "text/plain": textKeyValues(this.constructor.name, rows), "text/html": htmlKeyValues(this.constructor.name, rows) };
  }
}

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
    for (const [name, p] of this.loaded.model.namedParameters()) if (!parseAdapterParameter(name)) n += p.size;
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
    ];
  }

  /** The shared multi-adapter model (created on the first LoRA). */
  peftModel(): PeftModel {
    return (this.peft ??= PeftModel.emptyOn(this.loaded.model));
  }

  /** A new LoRA adapter on this model: `base.lora(8)` or `base.lora({ r: 8, alpha: 16, targets: [...] })`. */
  lora(config: LoraConfigInput | number = {}): LoraBuilder {
    return new LoraBuilder(this, typeof config === "number" ? { r: config } : config);
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

  /** A weight copy of the base (for full fine-tuning), adapters excluded. */
  cloneWeights(): CausalLM {
    const copy = createModel(this.loaded.config);
    const source = new Map(
      this.withWeights(() => [...this.loaded.model.namedParameters()].map(([n, p]) => [n.replace(/\.base_layer\./, "."), p] as const)),
    );
    for (const [name, p] of copy.namedParameters()) tf.tidy(() => p.assign(source.get(name)!));
    return copy;
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
    return `LoRA r=${this.config.r}`;
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

  recordedConfig(): Record<string, unknown> {
    return { lora: this.config };
  }

  async saveToRun(dir: string): Promise<void> {
    await this.save(path.join(dir, "adapter"));
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

  /** A plain model with this adapter merged into a copy of the weights, saved as an HF checkpoint. */
  async saveMerged(dir: string): Promise<string> {
    const merged = this.base.cloneWeights();
    const peft = this.base.peftModel();
    this.withWeights(() => {
      const params = new Map(peft.base.namedParameters());
      peft.merge([this.adapterName]);
      for (const [name, p] of merged.namedParameters()) {
        const source = params.get(name) ?? params.get(name.replace(/\.(weight|bias)$/, ".base_layer.$1"));
        tf.tidy(() => p.assign(source!));
      }
      peft.unmerge();
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

/** `base.lora(cfg)`: not trained yet; `.train(ds, opts)` trains a new adapter and resolves to a Run. */
export class LoraBuilder {
  constructor(
    readonly base: Model,
    readonly config: LoraConfigInput,
  ) {}

  async train(data: DataInput, options: TrainOptions = {}): Promise<Run<LoraModel>> {
    return this.trainRun(data, options);
  }

  /** A new adapter trained as a run, or (`reopened`) a recorded run continued. */
  trainRun(data: DataInput, options: TrainOptions, reopened?: Reopened): Promise<Run<LoraModel>> {
    const create = (seed: number) => {
      const name = `lora_${++adapterCounter}`;
      // The adapter's initial weights and dropout masks come from the run's seed, not from what the session did before.
      this.base.peftModel().addAdapter(name, { baseModelNameOrPath: this.base.ref, ...this.config }, { seed });
      return new LoraModel(this.base, name);
    };
    return Run.start(this.base, create, data, options, reopened);
  }
}

/** `base.full()`: `.train(ds, opts)` fine-tunes every weight of a copy of the base and resolves to a Run. */
export class FullBuilder {
  constructor(readonly base: Model) {}

  async train(data: DataInput, options: TrainOptions = {}): Promise<Run<FullModel>> {
    return this.trainRun(data, options);
  }

  trainRun(data: DataInput, options: TrainOptions, reopened?: Reopened): Promise<Run<FullModel>> {
    return Run.start(this.base, () => new FullModel(this.base, this.base.cloneWeights()), data, options, reopened);
  }
}

/** Loads a model: a local directory or a Hugging Face hub id. */
export async function model(ref: string, options: { backend?: string } = {}): Promise<Model> {
  await initBackend(options.backend);
  return new Model(ref, await loadModel(ref));
}
