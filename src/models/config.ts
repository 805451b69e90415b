/**
 * config.json of a Hugging Face causal LM, read into a typed record.
 * Fields we do not implement are rejected with a clear message rather than silently ignored:
 * a model that loads must compute what transformers computes.
 */
import * as path from "node:path";
import { boolean, check, Fields, invalid, oneOf, positiveInt, positiveNumber, validate } from "../core/check.js";
import { readJsonObject } from "../core/json-file.js";

export type RopeScaling =
  | { type: "linear"; factor: number }
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LlamaConfig {
  family: "llama";
  /** "llama" | "mistral" | "qwen2": the same decoder with different defaults. */
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** Bias on q/k/v projections (qwen2: always; llama: `attention_bias`, which also puts one on o_proj). */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Keys further back than this are masked (mistral); null = full causal attention. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

export type Gpt2Activation = "gelu_new" | "gelu" | "gelu_pytorch_tanh" | "relu" | "silu";

export interface Gpt2Config {
  family: "gpt2";
  modelType: "gpt2";
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number;
  layerNormEps: number;
  activation: Gpt2Activation;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

export type ModelConfig = LlamaConfig | Gpt2Config;

type Json = Record<string, unknown>;

export const tokenId = check<number>("a token id (a non-negative integer)", (v) => Number.isInteger(v) && (v as number) >= 0);
export const tokenIds = check<number | number[]>("a token id or a list of token ids", (v) =>
  Array.isArray(v) ? v.every((x) => tokenId.accepts(x)) : tokenId.accepts(v),
);
/** A context of one position could never score or generate a token (each is predicted from the ones before it). */
const contextLength = check<number>(
  "an integer ≥ 2 (each token is predicted from the ones before it)",
  (v) => Number.isInteger(v) && (v as number) >= 2,
);
const object = check<Json>("an object", (v) => typeof v === "object" && v !== null && !Array.isArray(v));

/**
 * Rejects a field whose value would change the computation in a way loralab does not implement: absent (or
 * null) and `allowed` are fine, anything else is `<file>: <field>: expected <expected>, got <value>`.
 */
function rejectUnless(f: Fields, field: string, allowed: unknown, expected: string): void {
  if (f.has(field) && f.raw[field] !== allowed) throw invalid(f.where, field, expected, f.raw[field]);
}

/** Fields of every architecture that loralab cannot honour. */
function rejectUnsupported(f: Fields): void {
  // Pre-quantized checkpoints (bitsandbytes, GPTQ, AWQ, …) store packed integers that would load as nonsense.
  if (f.has("quantization_config")) {
    throw invalid(
      f.where,
      "quantization_config",
      `no quantization_config: loralab loads full-precision safetensors weights and quantizes them itself (--quantize nf4, or quantize: "nf4" in code)`,
      f.raw.quantization_config,
    );
  }
}

const LLAMA_TYPES = ["llama", "mistral", "qwen2"] as const;

function parseRopeScaling(f: Fields): RopeScaling | null {
  const r = f.optional("rope_scaling", object, null);
  if (r === null) return null;
  const where = f.where;
  const typeField = r.rope_type !== undefined ? "rope_scaling.rope_type" : "rope_scaling.type";
  const type = r.rope_type ?? r.type;
  const num = (k: string, fallback?: number): number =>
    r[k] === undefined && fallback !== undefined ? fallback : validate(r[k], positiveNumber, where, `rope_scaling.${k}`);
  if (type === "default") return null;
  if (type === "linear") return { type: "linear", factor: num("factor") };
  if (type === "llama3") {
    return {
      type: "llama3",
      factor: num("factor"),
      lowFreqFactor: num("low_freq_factor", 1),
      highFreqFactor: num("high_freq_factor", 4),
      originalMaxPositionEmbeddings: num("original_max_position_embeddings", 8192),
    };
  }
  throw invalid(where, typeField, `"linear", "llama3" or "default" (other RoPE scaling types are not implemented)`, type);
}

function parseLlama(f: Fields, modelType: string): LlamaConfig {
  const hiddenSize = f.required("hidden_size", positiveInt);
  const numHeads = f.required("num_attention_heads", positiveInt);
  const numKvHeads = f.optional("num_key_value_heads", positiveInt, numHeads);
  if (numHeads % numKvHeads !== 0)
    throw invalid(f.where, "num_key_value_heads", `a divisor of num_attention_heads (${numHeads})`, numKvHeads);
  const headDim = f.has("head_dim") ? f.required("head_dim", positiveInt) : hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw invalid(f.where, "hidden_size", `a multiple of num_attention_heads (${numHeads})`, hiddenSize);
  if (headDim % 2 !== 0) throw invalid(f.where, "head_dim", "an even number (RoPE rotates pairs)", headDim);
  f.optional("hidden_act", oneOf("silu"), "silu");
  rejectUnless(f, "pretraining_tp", 1, "1 (pretraining_tp > 1 is not implemented)");
  rejectUnless(f, "partial_rotary_factor", 1, "1 (partial rotary embeddings are not implemented)");
  const isQwen2 = modelType === "qwen2";
  const isMistral = modelType === "mistral";
  const attentionBias = f.optional("attention_bias", boolean, false);
  // Qwen2 applies its sliding window only when use_sliding_window is set, and then only to some layers.
  if (isQwen2) rejectUnless(f, "use_sliding_window", false, "false (Qwen2 sliding-window attention is not implemented)");
  const slidingWindow = isMistral ? f.optional("sliding_window", positiveInt, null) : null;
  return {
    family: "llama",
    modelType,
    vocabSize: f.required("vocab_size", positiveInt),
    hiddenSize,
    intermediateSize: f.required("intermediate_size", positiveInt),
    numLayers: f.required("num_hidden_layers", positiveInt),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions: f.optional("max_position_embeddings", contextLength, 2048),
    rmsNormEps: f.optional("rms_norm_eps", positiveNumber, 1e-6),
    ropeTheta: f.optional("rope_theta", positiveNumber, 10000),
    ropeScaling: parseRopeScaling(f),
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: f.optional("mlp_bias", boolean, false),
    slidingWindow,
    tieWordEmbeddings: f.optional("tie_word_embeddings", boolean, false), // LlamaConfig, MistralConfig and Qwen2Config all default to untied
    ...specialTokens(f),
  };
}

function parseGpt2(f: Fields): Gpt2Config {
  const hiddenSize = f.optional("n_embd", positiveInt, 768);
  const numHeads = f.optional("n_head", positiveInt, 12);
  if (hiddenSize % numHeads !== 0) throw invalid(f.where, "n_embd", `a multiple of n_head (${numHeads})`, hiddenSize);
  rejectUnless(f, "scale_attn_weights", true, "true (unscaled attention is not implemented)");
  rejectUnless(f, "scale_attn_by_inverse_layer_idx", false, "false (scaling by the inverse layer index is not implemented)");
  rejectUnless(f, "reorder_and_upcast_attn", false, "false (reordered, upcast attention is not implemented)");
  rejectUnless(f, "add_cross_attention", false, "false (cross-attention is not part of a causal LM)");
  return {
    family: "gpt2",
    modelType: "gpt2",
    vocabSize: f.optional("vocab_size", positiveInt, 50257),
    hiddenSize,
    intermediateSize: f.optional("n_inner", positiveInt, 4 * hiddenSize),
    numLayers: f.optional("n_layer", positiveInt, 12),
    numHeads,
    maxPositions: f.optional("n_positions", contextLength, 1024),
    layerNormEps: f.optional("layer_norm_epsilon", positiveNumber, 1e-5),
    activation: f.optional("activation_function", oneOf("gelu_new", "gelu", "gelu_pytorch_tanh", "relu", "silu"), "gelu_new"),
    tieWordEmbeddings: f.optional("tie_word_embeddings", boolean, true),
    ...specialTokens(f),
  };
}

function specialTokens(f: Fields): { bosTokenId: number | null; eosTokenIds: number[]; padTokenId: number | null } {
  const eos = f.optional("eos_token_id", tokenIds, []);
  return {
    bosTokenId: f.optional("bos_token_id", tokenId, null),
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
    padTokenId: f.optional("pad_token_id", tokenId, null),
  };
}

/** Parses the JSON of a config.json; `file` names it in errors. */
export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  const f = Fields.of(file, raw);
  const modelType = f.required("model_type", oneOf(...LLAMA_TYPES, "gpt2"));
  rejectUnsupported(f);
  return modelType === "gpt2" ? parseGpt2(f) : parseLlama(f, modelType);
}

export function readModelConfig(dir: string): ModelConfig {
  const file = path.join(dir, "config.json");
  return parseModelConfig(readJsonObject(file, "a model directory needs config.json").raw, file);
}
