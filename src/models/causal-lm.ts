/** What every decoder offers the trainer, the evaluator and the generator. */
import { attention, tf, viewAs } from "../backend/index.js";
import type { Module } from "../nn/module.js";
import type { ActivationCheckpointing } from "../nn/checkpointing.js";
import { matMulTransposed } from "../nn/layers.js";
import type { ModelConfig } from "./config.js";

/** Keys and values of past positions, one entry per layer, grown in place by each forward. */
export class KVCache {
  readonly layers: ({ k: tf.Tensor4D; v: tf.Tensor4D } | undefined)[];

  constructor(numLayers: number) {
    this.layers = new Array(numLayers).fill(undefined);
  }

  /** Number of positions already cached. */
  get length(): number {
    return this.layers[0]?.k.shape[2] ?? 0;
  }

  /** Appends this step's keys/values [B, H, T, D] for `layer`; returns the full ones. */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const past = this.layers[layer];
    const next = past ? { k: tf.concat([past.k, k], 2), v: tf.concat([past.v, v], 2) } : { k, v };
    this.layers[layer] = { k: tf.keep(next.k), v: tf.keep(next.v) };
    past?.k.dispose();
    past?.v.dispose();
    return next;
  }

  dispose(): void {
    for (const l of this.layers) {
      l?.k.dispose();
      l?.v.dispose();
    }
    this.layers.fill(undefined);
  }
}

export interface ForwardOptions {
  /** [B, Tpast + T]: 1 for real tokens, 0 for padding (HF's attention_mask). */
  attentionMask?: tf.Tensor2D;
  cache?: KVCache;
  /** Training with activation checkpointing: each decoder layer recomputes its activations in the backward. */
  checkpointing?: ActivationCheckpointing;
}

export interface CausalLM extends Module {
  readonly config: ModelConfig;
  /** ids [B, T] → logits [B, T, V] */
  forward(ids: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D;
}

/**
 * Additive attention bias [B, 1, T, Tpast + T]: 0 where query i may attend key j, a large negative
 * number where not (future keys, padding, keys outside a sliding window). Finite, so a fully masked
 * padding row gives a uniform softmax instead of NaN.
 */
export function attentionBias(
  batch: number,
  queryLen: number,
  pastLen: number,
  attentionMask?: tf.Tensor2D,
  slidingWindow: number | null = null,
): tf.Tensor4D {
  return tf.tidy(() => {
    const keyLen = pastLen + queryLen;
    const allowed = new Float32Array(queryLen * keyLen);
    for (let i = 0; i < queryLen; i++) {
      const q = pastLen + i;
      for (let j = 0; j < keyLen; j++) {
        const causal = j <= q;
        const inWindow = slidingWindow === null || q - j < slidingWindow;
        allowed[i * keyLen + j] = causal && inWindow ? 1 : 0;
      }
    }
    let ok: tf.Tensor = tf.tensor4d(allowed, [1, 1, queryLen, keyLen]);
    if (attentionMask) ok = ok.mul(attentionMask.reshape([batch, 1, 1, keyLen]));
    return tf.sub(1, ok).mul(-1e9).broadcastTo([batch, 1, queryLen, keyLen]) as tf.Tensor4D;
  });
}

/** softmax(q kᵀ / √d + bias) v over [B, H, T, D] tensors. */
export function scaledDotProductAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor4D): tf.Tensor4D {
  return attention(q, k, v, bias, 1 / Math.sqrt(q.shape[3])); // [B, H, T, D]
}

/** [B, T, H·D] → [B, H, T, D] */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor4D {
  const [b, t, hd] = x.shape as [number, number, number];
  return viewAs(x, [b, t, heads, hd / heads]).transpose([0, 2, 1, 3]);
}

/** [B, H, T, D] → [B, T, H·D] */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [b, h, t, d] = x.shape;
  return viewAs(x.transpose([0, 2, 1, 3]), [b, t, h * d]) as tf.Tensor3D;
}

/** Output head sharing the token embedding matrix: [B, T, C] · Eᵀ → [B, T, V] */
export function tiedHead(h: tf.Tensor3D, embedding: tf.Tensor): tf.Tensor3D {
  const [b, t, c] = h.shape;
  return viewAs(matMulTransposed(viewAs(h, [b * t, c]) as tf.Tensor2D, embedding as tf.Tensor2D), [b, t, -1]) as tf.Tensor3D;
}
