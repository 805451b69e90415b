/** From a model reference (directory, shipped name or hub id) to a ready CausalLM with its tokenizer. */
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { readOptionalJsonObject } from "../core/json-file.js";
import { readCheckpointTensors, weightsFileOf } from "../checkpoint/sharded.js";
import { isFloatDType, type DecodedTensor } from "../checkpoint/safetensors.js";
import { resolveModel } from "./reference.js";
import { Tokenizer } from "./tokenizer.js";
import type { Module } from "../nn/module.js";
import { type ModelConfig, readModelConfig, tokenIds } from "./config.js";
import type { CausalLM } from "./causal-lm.js";
import { LlamaForCausalLM } from "./llama.js";
import { Gpt2LMHeadModel } from "./gpt2.js";

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  model: CausalLM;
  /** Undefined when the directory has no tokenizer.json (token ids still work). */
  tokenizer: Tokenizer | undefined;
  /** EOS ids from generation_config.json, else config.json. */
  eosTokenIds: number[];
}

export function createModel(config: ModelConfig): CausalLM {
  return config.family === "gpt2" ? new Gpt2LMHeadModel(config) : new LlamaForCausalLM(config);
}

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
function checkFloat(where: string, key: string, t: DecodedTensor): void {
  if (!isFloatDType(t.dtype)) {
    throw new UserError(`${where}: tensor "${key}": expected a floating-point weight (F32, F16, BF16 or F64), got dtype ${t.dtype}`);
  }
}

/** Copies checkpoint tensors into the module's parameters, checking that names, dtypes and shapes agree. */
export function assignWeights(module: Module, tensors: Map<string, DecodedTensor>, where: string, options: { tied: boolean }): void {
  const used = new Set<string>();
  let embeddingShape: number[] | undefined;
  for (const [name, param] of module.namedParameters()) {
    const key = candidateKeys(name).find((k) => tensors.has(k));
    if (key === undefined) throw new UserError(`${where}: missing tensor "${name}" (expected shape ${showShape(param.shape)})`);
    const t = tensors.get(key)!;
    checkFloat(where, key, t);
    if (!sameShape(t.shape, param.shape)) {
      throw new UserError(`${where}: tensor "${key}" has shape ${showShape(t.shape)} but config.json implies ${showShape(param.shape)}`);
    }
    tf.tidy(() => param.assign(tf.tensor(t.data, t.shape, "float32")));
    used.add(key);
    if (EMBEDDING.test(name)) embeddingShape = param.shape;
  }
  // With tied embeddings transformers ignores a stored lm_head.weight, but only after checking its shape.
  const head = tensors.get(TIED_HEAD);
  if (options.tied && head !== undefined && !used.has(TIED_HEAD)) {
    checkFloat(where, TIED_HEAD, head);
    if (embeddingShape !== undefined && !sameShape(head.shape, embeddingShape)) {
      throw new UserError(
        `${where}: tensor "${TIED_HEAD}" has shape ${showShape(head.shape)} but the embedding it is tied to (tie_word_embeddings) is ${showShape(embeddingShape)}`,
      );
    }
    used.add(TIED_HEAD);
  }
  const unexpected = [...tensors.keys()].filter((k) => !used.has(k) && !BUFFER_SUFFIXES.some((s) => k.endsWith(s)));
  if (unexpected.length > 0) {
    const shown = unexpected
      .slice(0, 5)
      .map((k) => `"${k}"`)
      .join(", ");
    throw new UserError(
      `${where}: ${unexpected.length} tensor(s) the model does not have: ${shown}${unexpected.length > 5 ? ", …" : ""} (does config.json match the weights?)`,
    );
  }
}

/** EOS ids from generation_config.json (what transformers' generate() stops on), else config.json's. */
function generationEos(dir: string, config: ModelConfig): number[] {
  const generation = readOptionalJsonObject(path.join(dir, "generation_config.json"));
  const eos = generation?.optional("eos_token_id", tokenIds, undefined);
  return eos === undefined ? config.eosTokenIds : Array.isArray(eos) ? eos : [eos];
}

/** Loads a model from a local directory, a shipped model's name or a Hugging Face hub id (through the HF cache). */
export async function loadModel(ref: string): Promise<LoadedModel> {
  const dir = await resolveModel(ref);
  const config = readModelConfig(dir);
  const eosTokenIds = generationEos(dir, config);
  const tokenizer = Tokenizer.exists(dir) ? Tokenizer.fromDirectory(dir, { vocabSize: config.vocabSize }) : undefined;
  const tensors = await readCheckpointTensors(dir);
  const model = createModel(config);
  try {
    assignWeights(model, tensors, weightsFileOf(dir), { tied: config.tieWordEmbeddings });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { dir, config, model, tokenizer, eosTokenIds };
}
