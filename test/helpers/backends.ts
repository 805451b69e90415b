/** Computing the same thing on two tfjs backends (or with and without some kernels) and comparing the numbers. */
import assert from "node:assert/strict";
import { tf } from "../../src/backend/index.js";
import type { Random } from "../../src/core/random.js";

export interface Operand {
  shape: number[];
  values: Float32Array;
}

/** Uniform values in [−scale, scale). */
export function operand(shape: number[], random: Random, scale = 1): Operand {
  const n = shape.reduce((p, d) => p * d, 1);
  return { shape, values: Float32Array.from({ length: n }, () => (random.next() * 2 - 1) * scale) };
}

/**
 * `f` of tensors made from `inputs`, computed on `backend` (without the kernels named in `without`), as
 * plain arrays.
 */
export function on(backend: string, inputs: Operand[], f: (...xs: tf.Tensor[]) => tf.Tensor[], without: string[] = []): Float32Array[] {
  const previous = tf.getBackend();
  const removed = without.map((name) => tf.getKernel(name, backend)).filter((k) => k !== undefined);
  try {
    tf.setBackend(backend);
    for (const k of removed) tf.unregisterKernel(k.kernelName, backend);
    return tf.tidy(() => f(...inputs.map((x) => tf.tensor(x.values, x.shape))).map((t) => t.dataSync() as Float32Array));
  } finally {
    for (const k of removed) tf.registerKernel(k);
    tf.setBackend(previous);
  }
}

export function assertClose(actual: Float32Array, expected: Float32Array, what: string, tolerance = 2e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!)));
  assert.ok(worst <= tolerance, `${what}: largest relative difference ${worst}`);
}

/** 0 where key j ≤ query i + (keys − queries), −1e9 elsewhere, for every batch row: [B, 1, T, S]. */
export function causalBias(batch: number, queries: number, keys: number): tf.Tensor4D {
  const values = Array.from({ length: queries * keys }, (_, k) => (k % keys <= Math.floor(k / keys) + keys - queries ? 0 : -1e9));
  return tf.tensor4d(values, [1, 1, queries, keys]).tile([batch, 1, 1, 1]) as tf.Tensor4D;
}
