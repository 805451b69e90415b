/** From a model directory (or hub id) to a ready CausalLM with its tokenizer. */
import * as fs from "node:fs";
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { resolveModel } from "./reference.js";
import { readCheckpointTensors } from "../checkpoint/sharded.js";
import type { DecodedTensor } from "../checkpoint/safetensors.js";
import { Tokenizer } from "./tokenizer.js";
import type { Module } from "../nn/module.js";
import { type ModelConfig, readModelConfig } from "./config.js";
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

/**
 * Where a parameter may be stored: its own name, or for GPT-2 also without the "transformer."
 * prefix (the original OpenAI-converted checkpoints use bare names).
 */
function candidateKeys(name: string): string[] {
  return name.startsWith("transformer.") ? [name, name.slice("transformer.".length)] : [name];
}

/** Copies checkpoint tensors into the module's parameters, checking that names and shapes agree. */
export function assignWeights(module: Module, tensors: Map<string, DecodedTensor>, where: string, options: { tied: boolean }): void {
  const used = new Set<string>();
  for (const [name, param] of module.namedParameters()) {
    const key = candidateKeys(name).find((k) => tensors.has(k));
    if (key === undefined) throw new UserError(`${where}: missing tensor "${name}" (expected shape [${param.shape.join(", ")}])`);
    const t = tensors.get(key)!;
    if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
      throw new UserError(`${where}: tensor "${key}" has shape [${t.shape.join(", ")}] but config.json implies [${param.shape.join(", ")}]`);
    }
    tf.tidy(() => param.assign(tf.tensor(t.data, t.shape, "float32")));
    used.add(key);
  }
  const unexpected = [...tensors.keys()].filter((k) => !used.has(k) && !BUFFER_SUFFIXES.some((s) => k.endsWith(s))
    && !(options.tied && k === "lm_head.weight"));
  if (unexpected.length > 0) {
    const shown = unexpected.slice(0, 5).map((k) => `"${k}"`).join(", ");
    throw new UserError(`${where}: ${unexpected.length} tensor(s) the model does not have: ${shown}${unexpected.length > 5 ? ", …" : ""} (does config.json match the weights?)`);
  }
}

function generationEos(dir: string, config: ModelConfig): number[] {
  const file = path.join(dir, "generation_config.json");
  if (fs.existsSync(file)) {
    try {
      const g = JSON.parse(fs.readFileSync(file, "utf8")) as { eos_token_id?: number | number[] };
      if (g.eos_token_id !== undefined && g.eos_token_id !== null) return Array.isArray(g.eos_token_id) ? g.eos_token_id : [g.eos_token_id];
    } catch (e) {
      throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
    }
  }
  return config.eosTokenIds;
}

/** Loads a model from a local directory or a Hugging Face hub id (through the HF cache). */
export async function loadModel(ref: string): Promise<LoadedModel> {
  const dir = await resolveModel(ref);
  const config = readModelConfig(dir);
  const tensors = await readCheckpointTensors(dir);
  const model = createModel(config);
  try {
    assignWeights(model, tensors, dir, { tied: config.tieWordEmbeddings });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const tokenizer = Tokenizer.exists(dir) ? Tokenizer.fromDirectory(dir) : undefined;
  return { dir, config, model, tokenizer, eosTokenIds: generationEos(dir, config) };
}
