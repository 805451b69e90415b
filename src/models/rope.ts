/**
 * Rotary position embeddings in transformers' rotate_half convention: the head dimension is split
 * into halves (x₁, x₂) and rotated as (x₁ cos θ − x₂ sin θ, x₂ cos θ + x₁ sin θ), θ = position · inv_freq.
 */
import { rotary, tf } from "../backend/index.js";
import type { RopeScaling } from "./config.js";

const f32 = Math.fround;

/** inv_freq[i] = 1 / θ^(2i/d), with the scaling variants transformers implements. */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float32Array {
  const inv = new Float32Array(headDim / 2);
  for (let i = 0; i < inv.length; i++) inv[i] = f32(1 / f32(theta ** f32((2 * i) / headDim)));
  if (scaling?.type === "linear") for (let i = 0; i < inv.length; i++) inv[i] = f32(inv[i]! / scaling.factor);
  if (scaling?.type === "llama3") {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldLen } = scaling;
    const lowWavelen = oldLen / lowFreqFactor;
    const highWavelen = oldLen / highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!;
      if (wavelen > lowWavelen) inv[i] = f32(inv[i]! / factor);
      else if (wavelen >= highWavelen) {
        const smooth = (oldLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = f32((1 - smooth) * (inv[i]! / factor) + smooth * inv[i]!);
      }
    }
  }
  return inv;
}

export class RotaryEmbedding {
  private readonly invFreq: Float32Array;

  constructor(
    readonly headDim: number,
    theta: number,
    scaling: RopeScaling | null,
  ) {
    this.invFreq = inverseFrequencies(headDim, theta, scaling);
  }

  /** cos and sin tables [T, D] for positions start … start+T−1 (angles rounded to float32 like torch). */
  tables(start: number, length: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const d = this.headDim;
    const half = d / 2;
    const cos = new Float32Array(length * d);
    const sin = new Float32Array(length * d);
    for (let t = 0; t < length; t++) {
      for (let i = 0; i < half; i++) {
        const angle = f32((start + t) * this.invFreq[i]!);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        cos[t * d + i] = cos[t * d + i + half] = c;
        sin[t * d + i] = sin[t * d + i + half] = s;
      }
    }
    return { cos: tf.tensor2d(cos, [length, d]), sin: tf.tensor2d(sin, [length, d]) };
  }
}

/** x [B, H, T, D] rotated by the tables [T, D]. */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  return rotary(x, cos, sin) as tf.Tensor4D;
}
