/**
 * What a model needs in memory, estimated before anything is allocated: its weights by storage format (from
 * config.json alone), and the tensors a forward pass or a training step adds on top (per token, fitted to what
 * tf.profile measures; test/memory-checks.test.ts keeps each estimate within a stated factor of the measured peak).
 */
import { ensureFits } from "../backend/memory.js";
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
 * float32 values a pass keeps alive, per token: per decoder layer `hidden`·C + `intermediate`·I, for one layer's
 * attention `attention`·H·T (T keys per query: no pass keeps a layer's probabilities, the backward pass computes
 * them again), for the output head `vocab`·V, and `weights` per element of a float32 projection or head (their
 * transposes, and for full training their gradients). Layers tidy their intermediates, so inference holds every
 * layer's output but one layer's `intermediate` at a time; a training step holds every layer's (or with
 * checkpointing one layer's, plus every layer's input) and half a layer more, the backward in flight.
 * Fitted per family (Llama's norms, RoPE, SwiGLU and attention are fused kernels, GPT-2's norms and MLP are not)
 * by scripts/fit-memory-estimate.ts to tf.profile's peak on 48 random-weight shapes per family (C 32–256, I 128–1024,
 * H 2–8, V 512–4096, T 32–512, batch 1–4, 2–4 layers): the least worst relative error above a physical floor for
 * attention (long rows are all attention), raised by 10 %. On those shapes the estimates land at 0.70–1.49× of the
 * measured training peaks and 0.60–1.58× for inference, whose peak is the larger of the layers' and the head's, not
 * their sum. The tests hold tiny-moby's and stories260K's within 0.8–1.6×.
 */
export interface PassCoefficients {
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

export const PASSES: Record<ModelConfig["family"], FamilyPasses> = {
  llama: {
    inference: { hidden: 6.9, intermediate: 3.3, attention: 2.2, vocab: 1.5, weights: 0 },
    adapter: { hidden: 22, intermediate: 5.4, attention: 3.3, vocab: 4.1, weights: 0 },
    full: { hidden: 7, intermediate: 3, attention: 3.3, vocab: 5.3, weights: 1.6 },
  },
  gpt2: {
    inference: { hidden: 7.5, intermediate: 8.6, attention: 2.2, vocab: 1.6, weights: 0 },
    adapter: { hidden: 28, intermediate: 17, attention: 3.3, vocab: 3.1, weights: 2.5 },
    full: { hidden: 28, intermediate: 14, attention: 3.3, vocab: 3.6, weights: 2 },
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
export function passBytes(config: ModelConfig, shape: PassShape, options: PassOptions): number {
  return termsBytes(passTerms(config, shape, options), PASSES[config.family][options.kind]);
}

/** A pass's estimate as `fixed` + Σ coefficient · per[coefficient]: what scripts/fit-memory-estimate.ts fits. */
export interface PassTerms {
  fixed: number;
  per: PassCoefficients;
}

/** `terms` priced by `k` (a coefficient it lacks counts 0). */
export function termsBytes({ fixed, per }: PassTerms, k: Partial<PassCoefficients>): number {
  return fixed + (Object.keys(per) as (keyof PassCoefficients)[]).reduce((sum, name) => sum + (k[name] ?? 0) * per[name], 0);
}

export function passTerms(config: ModelConfig, { batch, seq }: PassShape, options: PassOptions): PassTerms {
  const { numLayers, hiddenSize } = config;
  const bytesPerToken = 4 * batch * seq;
  const training = options.kind !== "inference";
  // Training holds every layer's activations (or with checkpointing one layer's and every layer's input) and half
  // a layer more; inference every layer's output but one layer's intermediates.
  const trainingLayers = (options.checkpointing ? 1 : numLayers) + 0.5;
  const outputs = training ? trainingLayers : numLayers;
  const intermediates = training ? trainingLayers : 1;
  const inputs = training && options.checkpointing ? numLayers * hiddenSize : 0;
  return {
    fixed: bytesPerToken * inputs + 12 * (options.largestCompact ?? 0),
    per: {
      hidden: bytesPerToken * outputs * hiddenSize,
      intermediate: bytesPerToken * intermediates * config.intermediateSize,
      // One layer's scores and probabilities at a time: no pass keeps them (the backward pass computes them again).
      attention: bytesPerToken * config.numHeads * seq,
      vocab: bytesPerToken * config.vocabSize,
      weights: 4 * options.float32Weights,
    },
  };
}

/** Refuses a forward pass without gradients of `shape` (an evaluation batch, a prompt) that the backend cannot hold. */
export function ensureForwardFits(model: CausalLM, shape: PassShape, task: string, remedies: readonly string[]): void {
  const bytes = passBytes(model.config, shape, { kind: "inference", ...projectionElements(model) });
  ensureFits(task, [{ what: "activations", bytes }], remedies);
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
