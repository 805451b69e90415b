/** From a model reference (directory, shipped name or hub id) to a ready CausalLM with its tokenizer. */
import * as os from "node:os";
import * as path from "node:path";
import { ensureFits, formatBytes } from "../backend/memory.js";
import { Fields, oneOf } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { readOptionalJsonObject } from "../core/json-file.js";
import { openCheckpoint, weightsFileOf } from "../checkpoint/sharded.js";
import type { LinearFactory } from "../nn/container.js";
import { QUANTIZE_FORMATS, type QuantizeFormat } from "../quant/frozen-weight.js";
import { resolveModel } from "./reference.js";
import { Tokenizer } from "./tokenizer.js";
import { type ModelConfig, readModelConfig, tokenIds } from "./config.js";
import type { CausalLM } from "./causal-lm.js";
import { LlamaForCausalLM } from "./llama.js";
import { Gpt2LMHeadModel } from "./gpt2.js";
import { assignWeights, checkTensors, pendingLinear } from "./checkpoint-weights.js";
import { weightMemory } from "./memory-estimate.js";
import { parameterCount, parameterSpecs } from "./parameters.js";

export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  model: CausalLM;
  /** Undefined when the directory has no tokenizer.json (token ids still work). */
  tokenizer: Tokenizer | undefined;
  /** EOS ids from generation_config.json, else config.json. */
  eosTokenIds: number[];
  /** How the decoder projections are stored (undefined: float32). */
  quantize?: QuantizeFormat;
}

export interface CreateOptions {
  /** Builds the decoder projections (default: float32 Linear / Conv1D). */
  linear?: LinearFactory;
}

export function createModel(config: ModelConfig, options: CreateOptions = {}): CausalLM {
  return config.family === "gpt2" ? new Gpt2LMHeadModel(config, options.linear) : new LlamaForCausalLM(config, options.linear);
}

/** EOS ids from generation_config.json (what transformers' generate() stops on), else config.json's. */
function generationEos(dir: string, config: ModelConfig): number[] {
  const generation = readOptionalJsonObject(path.join(dir, "generation_config.json"));
  const eos = generation?.optional("eos_token_id", tokenIds, undefined);
  return eos === undefined ? config.eosTokenIds : Array.isArray(eos) ? eos : [eos];
}

export interface LoadOptions {
  /**
   * Store the decoder projections compactly, as QLoRA does: "nf4" (4-bit NormalFloat, blocks of 64), "nf4-dq" (with
   * double quantization) or 16-bit floats ("f16", "bf16"); embeddings, norms and the output head stay float32.
   * Compact weights live outside the tensor backend and are widened per layer as it runs.
   */
  quantize?: QuantizeFormat;
}

export const quantizeRule = oneOf(...QUANTIZE_FORMATS);

function loadOptions(raw: unknown): LoadOptions {
  const fields = Fields.of("load options", raw ?? {});
  fields.rejectUnknown(["quantize"], "option");
  return { quantize: fields.optional("quantize", quantizeRule, undefined) };
}

/** Refuses a model whose weights cannot fit the backend, before any is allocated. */
function checkWeightsFit(dir: string, config: ModelConfig, quantize: QuantizeFormat | undefined): void {
  const weights = weightMemory(config, quantize);
  const needs = [
    { what: "float32 weights", bytes: weights.backend },
    // A compact projection is widened, and transposed, while it runs.
    { what: "one widened projection", bytes: 8 * weights.largestProjection },
  ];
  const remedies: string[] = [];
  if (quantize !== "nf4" && quantize !== "nf4-dq") {
    const nf4 = weightMemory(config, "nf4-dq");
    remedies.push(`--quantize nf4 (quantize: "nf4" in code; float32 weights then ≈ ${formatBytes(nf4.backend)})`);
  }
  remedies.push("a backend with more memory (--backend tensorflow)");
  ensureFits(`${path.join(dir, "config.json")}: this model`, needs, remedies);
  // Compact weights are JavaScript memory: they have to fit the machine.
  if (weights.compact > os.totalmem()) {
    throw new UserError(
      `${dir}: the model's compact weights need ≈ ${formatBytes(weights.compact)}; this machine has ${formatBytes(os.totalmem())} of memory`,
    );
  }
}

/**
 * Loads a model from a local directory, a shipped model's name or a Hugging Face hub id (through the HF cache).
 * The checkpoint's tensors are checked against config.json, and the memory the weights need against the backend,
 * before anything is allocated; tensors are then read one at a time (with `quantize`, each projection is stored
 * compactly as it is read, so the model is never held as float32).
 */
export async function loadModel(ref: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const { quantize } = loadOptions(options);
  const dir = await resolveModel(ref);
  const config = readModelConfig(dir);
  const eosTokenIds = generationEos(dir, config);
  const tokenizer = Tokenizer.exists(dir) ? Tokenizer.fromDirectory(dir, { vocabSize: config.vocabSize }) : undefined;
  const source = await openCheckpoint(dir);
  try {
    const tied = config.tieWordEmbeddings;
    // A config.json that claims whole layers more than the checkpoint holds is wrong itself (and listing what a claim
    // of 2⁴⁰ layers implies would never end); a tensor or two short, checkTensors names the missing one.
    const implied = parameterCount(config);
    if (implied.total - source.names().length >= implied.perLayer) {
      throw new UserError(
        `${path.join(dir, "config.json")}: num_hidden_layers = ${config.numLayers} implies ${implied.total.toLocaleString("en-US")} weight tensors, but ${weightsFileOf(dir)} holds ${source.names().length}`,
      );
    }
    checkTensors(
      parameterSpecs(config).map((p) => [p.name, p.shape] as const),
      source,
      weightsFileOf(dir),
      { tied },
    );
    checkWeightsFit(dir, config, quantize);
    const model = createModel(config, quantize ? { linear: pendingLinear(quantize) } : {});
    try {
      assignWeights(model, source, weightsFileOf(dir), { tied });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { dir, config, model, tokenizer, eosTokenIds, quantize };
  } finally {
    source.close();
  }
}
