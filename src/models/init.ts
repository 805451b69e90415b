/**
 * Seeded random weights for training a model from scratch, as transformers' `_init_weights` does for
 * Llama and GPT-2: linear and embedding weights ~ N(0, std²) (`initializer_range`, 0.02), biases 0,
 * normalisation weights 1 (and LayerNorm biases 0). The same config and seed give the same numbers on every
 * platform (the mulberry32 generator in random.ts and Box–Muller), so a checkpoint written from them is
 * byte-identical.
 */
import type { TensorToWrite } from "../checkpoint/safetensors.js";
import { Conv1D, Embedding, LayerNorm, Linear, RMSNorm } from "../nn/layers.js";
import { Random } from "../core/random.js";
import type { ModelConfig } from "./config.js";
import { createModel } from "./load.js";

export interface InitOptions {
  seed?: number;
  /** Standard deviation of the normal weights (default 0.02). */
  std?: number;
}

/** n samples of N(0, std²) from `random` (Box–Muller, two per pair of uniforms). */
export function normalSamples(random: Random, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random.next()));
    const theta = 2 * Math.PI * random.next();
    out[i] = r * Math.cos(theta) * std;
    if (i + 1 < n) out[i + 1] = r * Math.sin(theta) * std;
  }
  return out;
}

/**
 * Initial weights of a model with `config`, by checkpoint name (a tied output head is not listed, as
 * transformers does not store it), ready for writeSafetensors. Tensors are drawn in the model's parameter
 * order from one generator seeded with `seed`.
 */
export function initialWeights(config: ModelConfig, { seed = 0, std = 0.02 }: InitOptions = {}): Record<string, TensorToWrite> {
  const model = createModel(config); // for the names and shapes
  try {
    const random = new Random(seed);
    const out: Record<string, TensorToWrite> = {};
    for (const [prefix, module] of model.namedModules()) {
      const name = (p: string) => (prefix ? `${prefix}.${p}` : p);
      const weight = module.ownParameter("weight");
      const bias = module.ownParameter("bias");
      const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
      if (module instanceof RMSNorm || module instanceof LayerNorm) {
        out[name("weight")] = { shape: weight!.shape, data: new Float32Array(size(weight!.shape)).fill(1) };
      } else if (module instanceof Linear || module instanceof Conv1D || module instanceof Embedding) {
        out[name("weight")] = { shape: weight!.shape, data: normalSamples(random, size(weight!.shape), std) };
      } else if (weight || bias) {
        throw new Error(`initialWeights: no initialisation rule for module "${prefix}" (${module.constructor.name})`);
      }
      if (bias) out[name("bias")] = { shape: bias.shape, data: new Float32Array(size(bias.shape)) };
    }
    return out;
  } finally {
    model.dispose();
  }
}
