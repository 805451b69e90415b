/**
 * config.json of a Hugging Face causal LM, read into a typed record.
 * Fields we do not implement are rejected with a clear message rather than silently ignored:
 * a model that loads must compute what transformers computes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { UserError } from "../core/errors.js";

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

/** Reads fields of one config file, producing `config.json: field "x": expected …` errors. */
class FieldReader {
  constructor(private readonly raw: Json, private readonly file: string) {}

  fail(field: string, expected: string): never {
    throw new UserError(`${this.file}: field "${field}": expected ${expected}, got ${JSON.stringify(this.raw[field])}`);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  int(field: string, fallback?: number): number {
    const v = this.raw[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(field, "a positive integer (the field is required)");
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) this.fail(field, "a positive integer");
    return v;
  }

  number(field: string, fallback?: number): number {
    const v = this.raw[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(field, "a positive number (the field is required)");
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.fail(field, "a positive number");
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") this.fail(field, "true or false");
    return v;
  }

  optionalTokenId(field: string): number | null {
    const v = this.raw[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.fail(field, "a token id (non-negative integer) or null");
    return v;
  }

  tokenIds(field: string): number[] {
    const v = this.raw[field];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) this.fail(field, "a token id or a list of token ids");
    return list as number[];
  }

  oneOf<T extends string>(field: string, allowed: readonly T[], fallback: T): T {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) this.fail(field, `one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
    return v as T;
  }

  /** Rejects a field whose value changes the computation in a way we do not implement. */
  rejectUnless(field: string, ok: (v: unknown) => boolean, why: string): void {
    const v = this.raw[field];
    if (v !== undefined && !ok(v)) throw new UserError(`${this.file}: field "${field}" = ${JSON.stringify(v)} is not supported: ${why}`);
  }
}

const LLAMA_TYPES = ["llama", "mistral", "qwen2"] as const;

function parseRopeScaling(raw: unknown, file: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  const where = `${file}: field "rope_scaling"`;
  if (typeof raw !== "object" || Array.isArray(raw)) throw new UserError(`${where}: expected an object or null`);
  const r = raw as Json;
  const type = r.rope_type ?? r.type;
  const num = (k: string, fallback?: number): number => {
    const v = r[k] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new UserError(`${where}.${k}: expected a positive number, got ${JSON.stringify(r[k])}`);
    return v;
  };
  if (type === "default") return null;
  if (type === "linear") return { type: "linear", factor: num("factor") };
  if (type === "llama3") {
    return {
      type: "llama3", factor: num("factor"), lowFreqFactor: num("low_freq_factor", 1), highFreqFactor: num("high_freq_factor", 4),
      originalMaxPositionEmbeddings: num("original_max_position_embeddings", 8192),
    };
  }
  throw new UserError(`${where}: RoPE scaling type ${JSON.stringify(type)} is not supported (supported: "linear", "llama3", or null)`);
}

function parseLlama(f: FieldReader, raw: Json, file: string): LlamaConfig {
  const modelType = raw.model_type as string;
  const hiddenSize = f.int("hidden_size");
  const numHeads = f.int("num_attention_heads");
  const numKvHeads = f.int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) f.fail("num_key_value_heads", `a divisor of num_attention_heads (${numHeads})`);
  const headDim = f.has("head_dim") ? f.int("head_dim") : hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) f.fail("hidden_size", `a multiple of num_attention_heads (${numHeads})`);
  if (headDim % 2 !== 0) f.fail("head_dim", "an even number (RoPE rotates pairs)");
  f.oneOf("hidden_act", ["silu"], "silu");
  f.rejectUnless("pretraining_tp", (v) => v === 1 || v === null, "only pretraining_tp = 1 is implemented");
  f.rejectUnless("partial_rotary_factor", (v) => v === 1 || v === null, "partial rotary embeddings are not implemented");
  const isQwen2 = modelType === "qwen2";
  const isMistral = modelType === "mistral";
  const attentionBias = f.bool("attention_bias", false);
  // Qwen2 applies its sliding window only when use_sliding_window is set, and then only to some layers.
  if (isQwen2) f.rejectUnless("use_sliding_window", (v) => v === false, "Qwen2 sliding-window attention is not implemented");
  const slidingWindow = isMistral && f.has("sliding_window") ? f.int("sliding_window") : null;
  return {
    family: "llama",
    modelType,
    vocabSize: f.int("vocab_size"),
    hiddenSize,
    intermediateSize: f.int("intermediate_size"),
    numLayers: f.int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions: f.int("max_position_embeddings", 2048),
    rmsNormEps: f.number("rms_norm_eps", 1e-6),
    ropeTheta: f.number("rope_theta", 10000),
    ropeScaling: parseRopeScaling(raw.rope_scaling, file),
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: f.bool("mlp_bias", false),
    slidingWindow,
    tieWordEmbeddings: f.bool("tie_word_embeddings", false), // LlamaConfig, MistralConfig and Qwen2Config all default to untied
    bosTokenId: f.optionalTokenId("bos_token_id"),
    eosTokenIds: f.tokenIds("eos_token_id"),
    padTokenId: f.optionalTokenId("pad_token_id"),
  };
}

function parseGpt2(f: FieldReader): Gpt2Config {
  const hiddenSize = f.int("n_embd", 768);
  const numHeads = f.int("n_head", 12);
  if (hiddenSize % numHeads !== 0) f.fail("n_embd", `a multiple of n_head (${numHeads})`);
  f.rejectUnless("scale_attn_weights", (v) => v === true, "unscaled attention is not implemented");
  f.rejectUnless("scale_attn_by_inverse_layer_idx", (v) => v === false, "not implemented");
  f.rejectUnless("reorder_and_upcast_attn", (v) => v === false, "not implemented");
  f.rejectUnless("add_cross_attention", (v) => v === false, "cross-attention is not part of a causal LM");
  return {
    family: "gpt2",
    modelType: "gpt2",
    vocabSize: f.int("vocab_size", 50257),
    hiddenSize,
    intermediateSize: f.has("n_inner") ? f.int("n_inner") : 4 * hiddenSize,
    numLayers: f.int("n_layer", 12),
    numHeads,
    maxPositions: f.int("n_positions", 1024),
    layerNormEps: f.number("layer_norm_epsilon", 1e-5),
    activation: f.oneOf("activation_function", ["gelu_new", "gelu", "gelu_pytorch_tanh", "relu", "silu"], "gelu_new"),
    tieWordEmbeddings: f.bool("tie_word_embeddings", true),
    bosTokenId: f.optionalTokenId("bos_token_id"),
    eosTokenIds: f.tokenIds("eos_token_id"),
    padTokenId: f.optionalTokenId("pad_token_id"),
  };
}

/** Parses the JSON of a config.json; `file` names it in errors. */
export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UserError(`${file}: expected a JSON object`);
  const json = raw as Json;
  const f = new FieldReader(json, file);
  const modelType = json.model_type;
  if (modelType === "gpt2") return parseGpt2(f);
  if ((LLAMA_TYPES as readonly unknown[]).includes(modelType)) return parseLlama(f, json, file);
  throw new UserError(`${file}: field "model_type": ${JSON.stringify(modelType)} is not supported; expected one of ${[...LLAMA_TYPES, "gpt2"].map((t) => `"${t}"`).join(", ")}`);
}

export function readModelConfig(dir: string): ModelConfig {
  const file = path.join(dir, "config.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new UserError(`${file}: not found (a model directory needs config.json)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return parseModelConfig(raw, file);
}
