/**
 * What the benchmarks share: named model shapes, a seeded random model of a shape, the FLOPs of a
 * training step, and running one measurement per fresh process.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { UserError } from "../core/errors.js";
import { packageRoot } from "../core/package.js";
import { parseModelConfig, type LlamaConfig } from "../models/config.js";
import { createModel } from "../models/load.js";
import { assignWeights, pendingLinear } from "../models/checkpoint-weights.js";
import type { QuantizeFormat } from "../quant/frozen-weight.js";
import { mapSource } from "../checkpoint/tensor-source.js";
import { initialWeights } from "../models/init.js";
import type { CausalLM } from "../models/causal-lm.js";

export interface BenchShape {
  /** config.json fields of a Llama. */
  config: Record<string, unknown>;
  batch: number;
  seq: number;
}

const llama = (fields: Record<string, unknown>) => ({
  model_type: "llama",
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  ...fields,
});

/** `tiny` runs in seconds; `small` is the shape PyTorch is compared on; `135m` is SmolLM-135M's shape. */
export const BENCH_SHAPES: Record<string, BenchShape> = {
  tiny: {
    config: llama({ vocab_size: 512, hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2, num_attention_heads: 4 }),
    batch: 2,
    seq: 64,
  },
  small: {
    config: llama({ vocab_size: 8192, hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 8, num_attention_heads: 8 }),
    batch: 4,
    seq: 256,
  },
  "135m": {
    config: llama({
      vocab_size: 49152,
      hidden_size: 576,
      intermediate_size: 1536,
      num_hidden_layers: 30,
      num_attention_heads: 9,
      num_key_value_heads: 3,
    }),
    batch: 4,
    seq: 256,
  },
};

export function benchShape(name: string): BenchShape {
  const shape = BENCH_SHAPES[name];
  if (!shape) throw new UserError(`--config: expected one of ${Object.keys(BENCH_SHAPES).join(", ")}, got "${name}"`);
  return shape;
}

/**
 * A model of `config` with transformers' initialisation (normal weights, std 0.02; norms 1) drawn from `seed`;
 * with `quantize`, its decoder projections stored as loadModel stores them.
 */
export function randomModel(config: Record<string, unknown>, seed = 0, quantize?: QuantizeFormat): CausalLM {
  const parsed = parseModelConfig(config, "bench config");
  const model = createModel(parsed, quantize ? { linear: pendingLinear(quantize) } : {});
  const weights = initialWeights(parsed, { seed });
  const tensors = new Map(Object.entries(weights).map(([name, t]) => [name, { shape: t.shape, data: t.data, dtype: "F32" as const }]));
  assignWeights(model, mapSource(tensors), "bench config", { tied: parsed.tieWordEmbeddings });
  return model;
}

/**
 * Floating-point operations of one training step (2 per multiply-add) counting the matmuls only: the
 * forward pass, the input gradients, and the weight gradients of what trains. Attention is counted
 * in full (T² scores per head), as it is computed.
 */
export function stepFlops(c: LlamaConfig, batch: number, seq: number, mode: "lora" | "qlora" | "full", loraRank = 8): number {
  const tokens = batch * seq;
  const kv = c.numKvHeads * c.headDim;
  const q = c.numHeads * c.headDim;
  const perLayer = c.hiddenSize * (2 * q + 2 * kv) + 3 * c.hiddenSize * c.intermediateSize;
  const linear = 2 * tokens * (c.numLayers * perLayer + c.vocabSize * c.hiddenSize);
  const attention = c.numLayers * 2 * 2 * batch * c.numHeads * seq * seq * c.headDim;
  if (mode === "full") return 3 * linear + 3 * attention;
  // LoRA (q_proj and v_proj; QLoRA: every projection): x Aᵀ and (xAᵀ) Bᵀ forward, their input and weight gradients.
  const C = c.hiddenSize;
  const I = c.intermediateSize;
  const adapted = mode === "qlora" ? C + q + 2 * (C + kv) + q + C + 3 * (C + I) : C + q + C + kv; // Σ (in + out)
  const lora = c.numLayers * 3 * 2 * tokens * loraRank * adapted;
  return 2 * linear + 3 * attention + lora;
}

/**
 * Runs `loralab bench <args of variant>` in a fresh process per variant (a backend owns its tensors,
 * and a clean process keeps one variant's memory from inflating another's) and parses each JSON line.
 */
export function runWorkers<T>(variants: string[], argsFor: (variant: string) => string[], label: (variant: string) => string): T[] {
  const cli = path.join(packageRoot(), "bin", "loralab.js");
  return variants.map((variant) => {
    const run = spawnSync(process.execPath, [cli, "bench", ...argsFor(variant)], { encoding: "utf8" });
    if (run.status !== 0) throw new UserError(`${label(variant)}: ${run.stderr.trim().split("\n").pop()}`);
    return JSON.parse(run.stdout) as T;
  });
}
