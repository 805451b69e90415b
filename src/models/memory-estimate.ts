/**
 * What a model needs in memory, estimated before anything is allocated: its weights by storage format (from
 * config.json alone), and the tensors a forward pass or a training step adds on top (per token, fitted to what
 * tf.profile measures; test/memory-checks.test.ts keeps each estimate within a stated factor of the measured peak).
 */
import type { QuantizeFormat } from "../quant/frozen-weight.js";
import { nf4ByteLength } from "../quant/nf4.js";
import { Conv1D, Linear } from "../nn/layers.js";
import type { ModelConfig } from "./config.js";
import type { CausalLM } from "./causal-lm.js";
import { elementCount, parameterSpecs } from "./parameters.js";

export interface FormatShare {
  params: number;
  bytes: number;
}

export interface WeightMemory {
  /** float32 tf.Variables: held by the tensor backend. */
  backend: number;
  /** Compact projections (NF4, 16-bit): JavaScript memory, outside the backend. */
  compact: number;
  /** Per storage format ("f32", "nf4+dq", …): parameters and bytes. */
  byFormat: Record<string, FormatShare>;
  /** Elements of the largest decoder projection (widened to float32, with its transpose, while it runs). */
  largestProjection: number;
}

/** The format name a compact weight reports (FrozenWeight.format). */
export function storedFormat(quantize: QuantizeFormat): string {
  return quantize === "nf4-dq" ? "nf4+dq" : quantize;
}

function compactBytes(n: number, quantize: QuantizeFormat): number {
  if (quantize === "f16" || quantize === "bf16") return 2 * n;
  return nf4ByteLength(n, { doubleQuant: quantize === "nf4-dq" });
}

/** The weights of `config`'s model, stored as loadModel stores them with `quantize` (projections only; the rest float32). */
export function weightMemory(config: ModelConfig, quantize?: QuantizeFormat): WeightMemory {
  const byFormat: Record<string, FormatShare> = {};
  const add = (format: string, params: number, bytes: number) => {
    const share = (byFormat[format] ??= { params: 0, bytes: 0 });
    share.params += params;
    share.bytes += bytes;
  };
  let largestProjection = 0;
  for (const spec of parameterSpecs(config)) {
    const n = elementCount(spec.shape);
    if (spec.role === "projection" && quantize) {
      add(storedFormat(quantize), n, compactBytes(n, quantize));
      largestProjection = Math.max(largestProjection, n);
    } else add("f32", n, 4 * n);
  }
  const compact = Object.entries(byFormat).reduce((sum, [format, s]) => sum + (format === "f32" ? 0 : s.bytes), 0);
  return { backend: byFormat.f32?.bytes ?? 0, compact, byFormat, largestProjection };
}

/** One line per format, largest first: "968,884,224 params nf4+dq (476.7 MiB), 131,164,160 f32 (500.4 MiB)". */
export function describeWeights(byFormat: Record<string, FormatShare>, formatBytes: (n: number) => string): string {
  return Object.entries(byFormat)
    .sort(([, a], [, b]) => b.params - a.params)
    .map(([format, s]) => `${s.params.toLocaleString("en-US")} params ${format} (${formatBytes(s.bytes)})`)
    .join(", ");
}

/**
 * float32 values a pass keeps alive, per token: per decoder layer `hidden`·C + `intermediate`·I + `attention`·H·T
 * (T keys per query), for the output head `vocab`·V, and `weights` per element of a float32 projection or head
 * (their transposes, and for full training their gradients). Layers tidy their intermediates, so inference holds
 * every layer's output but one layer's `intermediate` and `attention` at a time; a training step holds every layer's
 * (or with checkpointing one layer's, plus every layer's input) and half a layer more, the backward in flight.
 * Fitted per family (Llama's norms, RoPE and SwiGLU are fused kernels, GPT-2's are not) to tf.profile's peak on 48
 * random-weight shapes (C 64–256, I 128–1024, H 2–8, V 512–4096, T 32–512, batch 1–4, 2–4 layers), tiny-moby and
 * stories260K, then raised by 10 %: the estimates land at 0.84–1.32× of every training measurement, and 0.75–1.32×
 * for inference (whose peak is the larger of the layers' and the head's, not their sum).
 */
interface PassCoefficients {
  hidden: number;
  intermediate: number;
  attention: number;
  vocab: number;
  weights: number;
}

interface FamilyPasses {
  /** A forward pass and its loss without gradients (eval). */
  inference: PassCoefficients;
  /** A training step whose base is frozen (LoRA, QLoRA): activations and their gradients. */
  adapter: PassCoefficients;
  /** A full fine-tuning step: activations, gradients, and a gradient for every weight. */
  full: PassCoefficients;
}

const PASSES: Record<ModelConfig["family"], FamilyPasses> = {
  llama: {
    inference: { hidden: 8.4, intermediate: 5.3, attention: 2.2, vocab: 1.3, weights: 0.082 },
    adapter: { hidden: 36, intermediate: 14, attention: 2.9, vocab: 1.9, weights: 0.4 },
    full: { hidden: 17, intermediate: 3.6, attention: 2.4, vocab: 3.4, weights: 1.4 },
  },
  gpt2: {
    inference: { hidden: 12, intermediate: 9.5, attention: 2.2, vocab: 1.4, weights: 0.094 },
    adapter: { hidden: 69, intermediate: 21, attention: 2.1, vocab: 1.9, weights: 0.6 },
    full: { hidden: 40, intermediate: 11, attention: 1.9, vocab: 5.2, weights: 1.5 },
  },
};

export type PassKind = keyof FamilyPasses;

export interface PassShape {
  batch: number;
  /** Tokens per row (the longest row of a batch: rows are padded to it). */
  seq: number;
}

export interface PassOptions {
  kind: PassKind;
  /** Activation checkpointing: one layer's activations at a time, plus every layer's input. */
  checkpointing?: boolean;
  /** Elements of float32 projection and head weights (see float32ProjectionElements). */
  float32Weights: number;
  /** Elements of the largest compact projection: widened, with its transpose, while it runs (0: none). */
  largestCompact?: number;
}

/** Estimated bytes of tensors a pass adds on top of the weights. */
export function passBytes(config: ModelConfig, { batch, seq }: PassShape, options: PassOptions): number {
  const k = PASSES[config.family][options.kind];
  const { numLayers, hiddenSize } = config;
  const layer = k.intermediate * config.intermediateSize + k.attention * config.numHeads * seq;
  let perToken: number;
  if (options.kind === "inference") perToken = numLayers * k.hidden * hiddenSize + layer;
  else {
    const layers = (options.checkpointing ? 1 : numLayers) + 0.5;
    const inputs = options.checkpointing ? numLayers * hiddenSize : 0;
    perToken = layers * (k.hidden * hiddenSize + layer) + inputs;
  }
  perToken += k.vocab * config.vocabSize;
  return 4 * (batch * seq * perToken + k.weights * options.float32Weights + 3 * (options.largestCompact ?? 0));
}

/** What passBytes needs to know of a loaded model: its float32 projection and head elements, its largest compact projection. */
export function projectionElements(model: CausalLM): Pick<PassOptions, "float32Weights" | "largestCompact"> {
  const c = model.config;
  let float32Weights = c.tieWordEmbeddings ? c.vocabSize * c.hiddenSize : 0;
  for (const [, m] of model.namedModules()) if (m instanceof Linear || m instanceof Conv1D) float32Weights += m.weight.size;
  let largestCompact = 0;
  for (const [, w] of model.namedStoredWeights()) largestCompact = Math.max(largestCompact, elementCount(w.shape));
  return { float32Weights, largestCompact };
}
