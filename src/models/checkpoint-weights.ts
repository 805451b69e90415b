/**
 * From checkpoint tensors to a model's weights: every name, dtype and shape is checked against what the model
 * expects before anything is copied, then tensors are read one at a time. Decoder projections built as
 * `PendingLinear` (loading with `quantize`) become QuantizedLinear layers as they stream in, so the model never
 * holds them as float32.
 */
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { isFloatDType } from "../checkpoint/safetensors.js";
import type { TensorHeader, TensorSource } from "../checkpoint/tensor-source.js";
import { type LinearLike } from "../nn/layers.js";
import { getModule, Module } from "../nn/module.js";
import type { LinearFactory } from "../nn/container.js";
import { compactWeight, type QuantizeFormat } from "../quant/frozen-weight.js";
import { QuantizedLinear, type CheckpointLayout } from "../quant/quantized-linear.js";

/** Checkpoint entries that are buffers, not weights (recomputed here), and safe to skip. */
const BUFFER_SUFFIXES = [".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"];
const TIED_HEAD = "lm_head.weight";
const EMBEDDING = /(^|\.)(embed_tokens|wte)\.weight$/;

/**
 * Where a parameter may be stored: its own name, or for GPT-2 also without the "transformer."
 * prefix (the original OpenAI-converted checkpoints use bare names).
 */
function candidateKeys(name: string): string[] {
  return name.startsWith("transformer.") ? [name, name.slice("transformer.".length)] : [name];
}

const showShape = (shape: readonly number[]) => `[${shape.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A weight must be stored as floating point: integer or bool tensors would load as meaningless floats. */
function checkFloat(where: string, key: string, t: TensorHeader): void {
  if (!isFloatDType(t.dtype)) {
    throw new UserError(`${where}: tensor "${key}": expected a floating-point weight (F32, F16, BF16 or F64), got dtype ${t.dtype}`);
  }
}

/**
 * Checks that `source` holds exactly the `expected` weights (name → shape): each present, floating point, of
 * the right shape, nothing else (buffers aside; a tied lm_head of the embedding's shape is allowed, as transformers
 * ignores it). Returns the checkpoint key of each expected name. Reads headers only.
 */
export function checkTensors(
  expected: Iterable<readonly [string, readonly number[]]>,
  source: TensorSource,
  where: string,
  options: { tied: boolean },
): Map<string, string> {
  const keys = new Map<string, string>();
  const used = new Set<string>();
  let embeddingShape: readonly number[] | undefined;
  for (const [name, shape] of expected) {
    const key = candidateKeys(name).find((k) => source.header(k) !== undefined);
    if (key === undefined) throw new UserError(`${where}: missing tensor "${name}" (expected shape ${showShape(shape)})`);
    const t = source.header(key)!;
    checkFloat(where, key, t);
    if (!sameShape(t.shape, shape)) {
      throw new UserError(`${where}: tensor "${key}" has shape ${showShape(t.shape)} but config.json implies ${showShape(shape)}`);
    }
    keys.set(name, key);
    used.add(key);
    if (EMBEDDING.test(name)) embeddingShape = shape;
  }
  // With tied embeddings transformers ignores a stored lm_head.weight, but only after checking its shape.
  const head = source.header(TIED_HEAD);
  if (options.tied && head !== undefined && !used.has(TIED_HEAD)) {
    checkFloat(where, TIED_HEAD, head);
    if (embeddingShape !== undefined && !sameShape(head.shape, embeddingShape)) {
      throw new UserError(
        `${where}: tensor "${TIED_HEAD}" has shape ${showShape(head.shape)} but the embedding it is tied to (tie_word_embeddings) is ${showShape(embeddingShape)}`,
      );
    }
    used.add(TIED_HEAD);
  }
  const unexpected = source.names().filter((k) => !used.has(k) && !BUFFER_SUFFIXES.some((s) => k.endsWith(s)));
  if (unexpected.length > 0) {
    const shown = unexpected
      .slice(0, 5)
      .map((k) => `"${k}"`)
      .join(", ");
    throw new UserError(
      `${where}: ${unexpected.length} tensor(s) the model does not have: ${shown}${unexpected.length > 5 ? ", …" : ""} (does config.json match the weights?)`,
    );
  }
  return keys;
}

/** A decoder projection to be filled from the checkpoint in a compact format: shapes only, no memory. */
export class PendingLinear extends Module implements LinearLike {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly hasBias: boolean,
    readonly layout: CheckpointLayout,
    readonly format: QuantizeFormat,
  ) {
    super();
  }

  /** The weight's shape as the checkpoint stores it. */
  get storedShape(): [number, number] {
    return this.layout === "conv1d" ? [this.inFeatures, this.outFeatures] : [this.outFeatures, this.inFeatures];
  }

  forward(): tf.Tensor {
    throw new Error("PendingLinear: the layer's weights were never loaded");
  }
}

/** The factory that builds a model's projections as PendingLinear, to be stored in `format`. */
export const pendingLinear =
  (format: QuantizeFormat): LinearFactory =>
  (inF, outF, bias, layout) =>
    new PendingLinear(inF, outF, bias, layout, format);

/** [rows, cols] row-major → [cols, rows]. */
function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

function pendingLayers(module: Module): [string, PendingLinear][] {
  return [...module.namedModules()].filter((e): e is [string, PendingLinear] => e[1] instanceof PendingLinear);
}

/** The weights `module` expects from a checkpoint: its parameters and its pending projections. */
function expectedWeights(module: Module): [string, readonly number[]][] {
  const out: [string, readonly number[]][] = [...module.namedParameters()].map(([name, p]) => [name, p.shape]);
  for (const [path, layer] of pendingLayers(module)) {
    out.push([`${path}.weight`, layer.storedShape]);
    if (layer.hasBias) out.push([`${path}.bias`, [layer.outFeatures]]);
  }
  return out;
}

/** Compact projection built from the checkpoint: widened to float32 one tensor at a time, then stored. */
function quantizedLayer(layer: PendingLinear, source: TensorSource, weightKey: string, biasKey: string | undefined): QuantizedLinear {
  const stored = source.read(weightKey).data;
  const values = layer.layout === "conv1d" ? transposed(stored, layer.inFeatures, layer.outFeatures) : stored;
  const weight = compactWeight(values, [layer.outFeatures, layer.inFeatures], layer.format);
  return new QuantizedLinear(weight, biasKey === undefined ? undefined : source.read(biasKey).data, layer.layout);
}

/**
 * Copies the checkpoint's tensors into `module`: checks them all first (checkTensors), then reads them one at a
 * time, assigning parameters and turning every PendingLinear into a QuantizedLinear.
 */
export function assignWeights(module: Module, source: TensorSource, where: string, options: { tied: boolean }): void {
  const keys = checkTensors(expectedWeights(module), source, where, options);
  for (const [name, param] of module.namedParameters()) {
    const t = source.read(keys.get(name)!);
    tf.tidy(() => param.assign(tf.tensor(t.data, t.shape, "float32")));
  }
  for (const [path, layer] of pendingLayers(module)) {
    const compact = quantizedLayer(layer, source, keys.get(`${path}.weight`)!, layer.hasBias ? keys.get(`${path}.bias`) : undefined);
    const dot = path.lastIndexOf(".");
    getModule(module, path.slice(0, Math.max(dot, 0)))!.replaceChild(path.slice(dot + 1), compact);
  }
}
