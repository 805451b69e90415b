/** Autoregressive generation with a KV cache: the prompt is encoded once, then one token per step. */
import { tf } from "../backend/index.js";
import { type CausalLM, KVCache } from "./causal-lm.js";
import { positiveInt, validate } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { Random } from "../core/random.js";
import { sampleToken, type SamplingOptions } from "./sampling.js";
import { ensureForwardFits } from "./memory-estimate.js";

export interface GenerationOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Generation stops after any of these (the stop token is included in the output, as transformers does). */
  eosTokenIds?: number[];
  seed?: number;
}

export interface Generation {
  /** The new tokens only. */
  ids: number[];
  stoppedBy: "eos" | "maxNewTokens" | "context";
}

/** Logits of the last position after feeding `ids` [T] (with the cache holding what came before). */
function nextLogits(model: CausalLM, ids: number[], cache: KVCache): Float32Array {
  const last = tf.tidy(() => {
    const logits = model.forward(tf.tensor2d([ids], [1, ids.length], "int32"), { cache }); // [1, T, V]
    return logits.slice([0, ids.length - 1, 0], [1, 1, -1]).reshape([-1]); // [V]
  });
  const values = last.dataSync() as Float32Array;
  last.dispose();
  return values;
}

export function generate(model: CausalLM, prompt: number[], options: GenerationOptions): Generation {
  validate(options.maxNewTokens, positiveInt, "generate", "maxNewTokens");
  if (prompt.length === 0) throw new UserError("generate: the prompt has no tokens; generation needs at least one (e.g. BOS)");
  const context = model.config.maxPositions;
  if (prompt.length >= context) {
    throw new UserError(
      `generate: the prompt has ${prompt.length} tokens; the model's context is ${context}, so nothing would fit after it`,
    );
  }
  // The prompt's forward pass is the largest (its attention is prompt² per head): it must fit before it runs.
  ensureForwardFits(model, { batch: 1, seq: prompt.length }, `generate: a prompt of ${prompt.length} tokens`, ["a shorter prompt"]);
  const random = new Random(options.seed ?? 0);
  const eos = new Set(options.eosTokenIds ?? []);
  const cache = new KVCache(model.config.numLayers);
  const ids: number[] = [];
  try {
    let logits = nextLogits(model, prompt, cache);
    for (;;) {
      const next = sampleToken(logits, options, random);
      ids.push(next);
      if (eos.has(next)) return { ids, stoppedBy: "eos" };
      if (ids.length >= options.maxNewTokens) return { ids, stoppedBy: "maxNewTokens" };
      if (prompt.length + ids.length >= model.config.maxPositions) return { ids, stoppedBy: "context" };
      logits = nextLogits(model, [next], cache);
    }
  } finally {
    cache.dispose();
  }
}
