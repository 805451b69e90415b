/**
 * Seeded random weights for training a model from scratch, as transformers' `_init_weights` does for
 * Llama and GPT-2: linear and embedding weights ~ N(0, std²) (`initializer_range`, 0.02), biases 0,
 * normalisation weights 1 (and LayerNorm biases 0). The same config and seed give the same numbers on every
 * platform (the mulberry32 generator in random.ts and Box–Muller), so a checkpoint written from them is
 * byte-identical.
 */
import type { TensorToWrite } from "../checkpoint/safetensors.js";
import { Random } from "../core/random.js";
import type { ModelConfig } from "./config.js";
import { elementCount, parameterSpecs } from "./parameters.js";

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
 * Initial weights of a model with `config`, one tensor at a time by checkpoint name (a tied output head is not
 * listed, as transformers does not store it), drawn in the model's parameter order from one generator seeded with
 * `seed`. Nothing is allocated but the tensor being yielded, so a script can write a model larger than memory.
 */
export function* initialTensors(config: ModelConfig, { seed = 0, std = 0.02 }: InitOptions = {}): Generator<[string, TensorToWrite]> {
  const random = new Random(seed);
  for (const { name, shape, role } of parameterSpecs(config)) {
    const size = elementCount(shape);
    const data =
      role === "norm" ? new Float32Array(size).fill(1) : role === "bias" ? new Float32Array(size) : normalSamples(random, size, std);
    yield [name, { shape: [...shape], data }];
  }
}

/** initialTensors collected, ready for writeSafetensors. */
export function initialWeights(config: ModelConfig, options: InitOptions = {}): Record<string, TensorToWrite> {
  return Object.fromEntries(initialTensors(config, options));
}
