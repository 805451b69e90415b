/**
 * A LoRA layer wraps a linear layer (PEFT's LoraLayer): the base stays frozen and each adapter adds
 *
 *   y = W x + (B (A dropout(x))) · scaling,   A [r, in], B [out, r], scaling = α / r (or α / √r)
 *
 * (DoRA adapters rescale this with the variant in dora.ts.) Submodules carry PEFT's names (base_layer,
 * lora_A.<adapter>, lora_B.<adapter>, lora_magnitude_vector.<adapter>), so parameter paths equal PEFT's state-dict keys.
 */
import { addSameShape, mulByConstant, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { Conv1D, Linear, type LinearLike, matMulTransposed } from "../nn/layers.js";
import { QuantizedLinear } from "../quant/quantized-linear.js";
import { weightTensor } from "../quant/frozen-weight.js";
import { Module } from "../nn/module.js";
import { ModuleDict } from "../nn/container.js";
import type { Random } from "../core/random.js";
import { DoraMagnitude } from "./dora.js";
import { type DropoutRows, hashText, rowDropout } from "./dropout.js";

export interface AdapterParameter {
  /** The wrapped module's path, e.g. "model.layers.0.self_attn.q_proj". */
  module: string;
  kind: "lora_A" | "lora_B" | "lora_magnitude_vector";
  adapter: string;
}

/** Reads an adapter parameter's path ("<module>.lora_A.<adapter>.weight"); undefined for any other parameter. */
export function parseAdapterParameter(name: string): AdapterParameter | undefined {
  const m = /^(.*)\.(lora_A|lora_B|lora_magnitude_vector)\.([^.]+)\.weight$/.exec(name);
  return m ? { module: m[1]!, kind: m[2] as AdapterParameter["kind"], adapter: m[3]! } : undefined;
}

/** Shared by every LoRA layer of one model: which adapters act, whether we are training, each adapter's random stream. */
export interface LoraState {
  active: string[];
  /** Inside `withAdaptersDisabled`: the base model alone. */
  disabled: boolean;
  /** Dropout only while training. */
  training: boolean;
  /** Set by the trainer: dropout masks per row of the micro-batch (see dropout.ts); else drawn from `random`. */
  dropoutRows?: DropoutRows;
  /** Per adapter: its own random stream, which seeds its dropout masks (after drawing its initial A and B). */
  random: Map<string, Random>;
}

export interface AdapterSettings {
  r: number;
  alpha: number;
  scaling: number;
  dropout: number;
  useDora: boolean;
}

function uniform(shape: [number, number], bound: number, random: Random): tf.Tensor2D {
  const values = Float32Array.from({ length: shape[0] * shape[1] }, () => (random.next() * 2 - 1) * bound);
  return tf.tensor2d(values, shape);
}

function gaussian(shape: [number, number], std: number, random: Random): tf.Tensor2D {
  const values = new Float32Array(shape[0] * shape[1]);
  for (let i = 0; i < values.length; i++) {
    const r = Math.sqrt(-2 * Math.log(1 - random.next()));
    values[i] = r * Math.cos(2 * Math.PI * random.next()) * std;
  }
  return tf.tensor2d(values, shape);
}

export class LoraLayer extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly settings = new Map<string, AdapterSettings>();
  /** Adapters whose update is currently folded into the base weight. */
  merged: string[] = [];
  private readonly mergedDeltas = new Map<string, tf.Tensor2D>();
  private readonly loraA = new ModuleDict<Linear>();
  private readonly loraB = new ModuleDict<Linear>();
  private readonly magnitude = new ModuleDict<DoraMagnitude>();

  constructor(
    /** The frozen layer: float32, or compact (QLoRA: NF4, widened per call). */
    readonly base: Linear | Conv1D | QuantizedLinear,
    private readonly state: LoraState,
    /** The wrapped module's path (keys its dropout masks). */
    readonly path: string,
  ) {
    super();
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.addModule("base_layer", base);
    this.addModule("lora_A", this.loraA);
    this.addModule("lora_B", this.loraB);
    this.addModule("lora_magnitude_vector", this.magnitude);
  }

  /** GPT-2's Conv1D stores its weight [in, out] (PEFT's fan_in_fan_out), also when loaded compact. */
  get fanInFanOut(): boolean {
    return this.base instanceof Conv1D || (this.base instanceof QuantizedLinear && this.base.layout === "conv1d");
  }

  adapterNames(): string[] {
    return [...this.settings.keys()];
  }

  /** PEFT's update_layer: A and B initialised per `init` from `random`; a DoRA magnitude from the initial weight. */
  addAdapter(name: string, s: AdapterSettings, init: boolean | "gaussian", random: Random): void {
    const a = new Linear(this.inFeatures, s.r, false);
    const b = new Linear(s.r, this.outFeatures, false);
    tf.tidy(() => {
      // PEFT: A as nn.Linear's default kaiming_uniform(a=√5), i.e. U(±1/√in); B zeros so training starts at the base model.
      if (init === "gaussian") a.weight.assign(gaussian([s.r, this.inFeatures], 1 / s.r, random));
      else a.weight.assign(uniform([s.r, this.inFeatures], 1 / Math.sqrt(this.inFeatures), random));
      if (init === false) b.weight.assign(uniform([this.outFeatures, s.r], 1 / Math.sqrt(s.r), random));
    });
    for (const m of [a, b]) m.weight.trainable = true;
    this.loraA.set(name, a);
    this.loraB.set(name, b);
    this.settings.set(name, s);
    if (s.useDora) this.magnitude.set(name, new DoraMagnitude(tf.tidy(() => DoraMagnitude.initial(this.baseWeight(), this.update(name)))));
  }

  deleteAdapter(name: string): void {
    if (this.merged.includes(name)) this.unmerge();
    this.loraA.delete(name);
    this.loraB.delete(name);
    if (this.magnitude.get(name)) this.magnitude.delete(name);
    this.settings.delete(name);
  }

  weightsOf(name: string): { a: tf.Variable; b: tf.Variable; magnitude: tf.Variable | undefined } {
    return { a: this.loraA.get(name)!.weight, b: this.loraB.get(name)!.weight, magnitude: this.magnitude.get(name)?.weight };
  }

  /** The base weight as [out, in], whatever its storage (a compact weight is widened anew: DoRA needs its row norms). */
  private baseWeight(): tf.Tensor2D {
    if (this.base instanceof QuantizedLinear) return weightTensor(this.base.weight);
    const w = this.base.weight as tf.Tensor2D;
    return this.fanInFanOut ? w.transpose() : w;
  }

  /** scaling · B A as [out, in]. */
  private update(name: string): tf.Tensor2D {
    const { a, b } = this.weightsOf(name);
    return tf.matMul(b as tf.Tensor2D, a as tf.Tensor2D).mul(this.settings.get(name)!.scaling);
  }

  private dropout(x: tf.Tensor, name: string): tf.Tensor {
    const rate = this.settings.get(name)!.dropout;
    if (!this.state.training || rate === 0) return x;
    const rows = this.state.dropoutRows;
    // Keyed by the layer and the adapter's place among the active ones, not by its name: two runs with the same seed
    // draw the same masks whatever their adapters are called.
    if (rows) return rowDropout(x, rate, rows, hashText(`${this.path}/${this.state.active.indexOf(name)}`));
    return tf.dropout(x, rate, undefined, this.state.random.get(name)!.int(2 ** 31));
  }

  forward(x: tf.Tensor): tf.Tensor {
    let y = this.base.forward(x); // [..., out]
    if (this.state.disabled) return this.merged.length ? tf.sub(y, this.mergedContribution(x)) : y;
    for (const name of this.state.active) {
      const s = this.settings.get(name);
      if (!s || this.merged.includes(name)) continue;
      const dropped = this.dropout(x, name);
      // Neither the scaling nor the sum keeps its [N, out] inputs for the backward pass (tfjs's mul and add would).
      const lora = mulByConstant(this.loraB.get(name)!.forward(this.loraA.get(name)!.forward(dropped)), s.scaling);
      const dora = this.magnitude.get(name);
      y = addSameShape(y, dora ? dora.forward(dropped, this.baseWeight(), this.update(name), lora) : lora);
    }
    return y;
  }

  /** The merged adapters' part of base(x), to take back out while adapters are disabled. */
  private mergedContribution(x: tf.Tensor): tf.Tensor {
    const lead = x.shape.slice(0, -1);
    const delta = tf.addN(this.merged.map((n) => this.mergedDeltas.get(n)!)); // [out, in]
    return matMulTransposed(x.reshape([-1, this.inFeatures]) as tf.Tensor2D, delta).reshape([...lead, this.outFeatures]);
  }

  /** What merging `name` adds to the [out, in] weight: scaling·BA, or DoRA's delta. */
  mergedDelta(name: string): tf.Tensor2D {
    const dora = this.magnitude.get(name);
    return dora ? dora.mergedDelta(this.baseWeight(), this.update(name)) : this.update(name);
  }

  /**
   * Folds the adapters' updates into the base weight (faster inference; equal up to float rounding).
   * The added deltas are kept so unmerge restores the base exactly as it was, DoRA included.
   */
  merge(names: string[]): void {
    const base = this.base;
    if (base instanceof QuantizedLinear && names.some((n) => this.settings.has(n))) {
      throw new UserError(
        `cannot merge into a base weight stored as ${base.weight.format}: the update would be lost to re-quantization; ` +
          "keep the adapter separate, or merge into a float32 copy (saveMerged(dir) in the DSL; loralab merge loads the base in float32)",
      );
    }
    for (const name of names) {
      if (this.merged.includes(name) || !this.settings.has(name)) continue;
      const delta = tf.tidy(() => this.mergedDelta(name));
      const weight = base.weight as tf.Variable;
      tf.tidy(() => weight.assign(weight.add(this.fanInFanOut ? delta.transpose() : delta)));
      this.mergedDeltas.set(name, delta);
      this.merged.push(name);
    }
  }

  unmerge(): void {
    while (this.merged.length) {
      const name = this.merged.pop()!;
      const delta = this.mergedDeltas.get(name)!;
      const weight = this.base.weight as tf.Variable; // only float32 bases are ever merged
      tf.tidy(() => weight.assign(weight.sub(this.fanInFanOut ? delta.transpose() : delta)));
      delta.dispose();
      this.mergedDeltas.delete(name);
    }
  }

  /** Forgets merged state without touching the weight (merge-and-unload keeps the merged base). */
  releaseMerged(): void {
    for (const d of this.mergedDeltas.values()) d.dispose();
    this.mergedDeltas.clear();
    this.merged = [];
  }
}
