/**
 * The WebAssembly SIMD kernels (src/backend/simd-kernels.wat) that run the fused ops' passes on wasm: the same
 * numbers as the JavaScript kernels (the cpu backend's) on shapes whose widths are not multiples of 4 (the scalar
 * tails), extreme and NaN inputs, and the assembled module in the repository equal to its source.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { attention, initBackend, rmsNorm, rotary, swiGlu, tf } from "../src/backend/index.js";
import { simdKernels } from "../src/backend/simd-kernels.js";
import { Heap, type WasmBackend } from "../src/backend/wasm-heap.js";
import { Random } from "../src/core/random.js";
import { causalLmLoss, IGNORE_INDEX, tokenNll } from "../src/models/loss.js";
import { RotaryEmbedding } from "../src/models/rope.js";
import { assembled, BYTES_FILE } from "../scripts/build-simd-kernels.js";
import { assertClose, causalBias, on, operand, type Operand } from "./helpers/backends.js";

before(async () => {
  await initBackend("cpu");
  await initBackend("wasm");
});

test("the wasm backend runs the SIMD kernels (LORALAB_SIMD is not off here)", () => {
  assert.ok(simdKernels(tf.backend() as unknown as WasmBackend), "instantiated on the wasm heap");
});

test("simd-kernels.wasm.ts is what simd-kernels.wat assembles to (npm run build:simd)", async () => {
  assert.equal(fs.readFileSync(BYTES_FILE, "utf8"), await assembled());
});

test("the SIMD exponential: within 1 ulp of Math.exp rounded to float32 from −87 to 88.37; 0 below −87.34, +∞ from 88.38, NaN kept", () => {
  const backend = tf.backend() as unknown as WasmBackend;
  const simd = simdKernels(backend)!;
  const n = 1 << 16;
  const xs = Float32Array.from({ length: n }, (_, i) => -87 + (175.37 * i) / (n - 1));
  const extremes = [-87.4, -200, -1e9, -Infinity, 88.39, 88.72, 1e9, NaN];
  const x = tf.tensor1d([...xs, ...extremes]);
  const out = tf.zerosLike(x);
  const heap = new Heap(backend);
  simd.scaledExp(heap.of(x).offset, heap.of(out).offset, x.size, 0, 1);
  const ys = out.dataSync() as Float32Array;
  tf.dispose([x, out]);
  const bits = new Int32Array(2);
  const floats = new Float32Array(bits.buffer);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    floats[0] = ys[i]!;
    floats[1] = Math.exp(xs[i]!);
    worst = Math.max(worst, Math.abs(bits[0]! - bits[1]!));
  }
  assert.ok(worst <= 1, `${worst} ulp`);
  assert.deepEqual([...ys.subarray(n)], [0, 0, 0, 0, Infinity, Infinity, Infinity, NaN]);
});

/** The value and the gradients (weighted by fixed random numbers) of `f` with respect to every input. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor) {
  return (...xs: tf.Tensor[]) => {
    const w = xs.pop()!;
    const value = f(...xs);
    const grads = tf.grads((...args: tf.Tensor[]) =>
      f(...args)
        .mul(w.reshape(value.shape))
        .sum(),
    )(xs);
    return [value, ...grads];
  };
}

function tables(dim: number, length: number): [tf.Tensor2D, tf.Tensor2D] {
  const { cos, sin } = new RotaryEmbedding(dim, 10000, null).tables(0, length);
  return [cos, sin];
}

const CASES: { name: string; inputs: (r: Random) => Operand[]; f: (...xs: tf.Tensor[]) => tf.Tensor }[] = [
  { name: "RMSNorm, width 13", inputs: (r) => [operand([3, 4, 13], r, 3), operand([13], r)], f: (x, w) => rmsNorm(x!, w!, 1e-5) },
  { name: "RMSNorm, width 3", inputs: (r) => [operand([5, 3], r, 3), operand([3], r)], f: (x, w) => rmsNorm(x!, w!, 1e-6) },
  { name: "rotary, head dim 10", inputs: (r) => [operand([2, 3, 7, 10], r)], f: (x) => rotary(x!, ...tables(10, 7)) },
  { name: "rotary, head dim 2", inputs: (r) => [operand([2, 5, 2], r)], f: (x) => rotary(x!, ...tables(2, 5)) },
  { name: "SwiGLU, 39 elements", inputs: (r) => [operand([3, 13], r, 12), operand([3, 13], r)], f: (g, u) => swiGlu(g!, u!) },
  {
    name: "attention's masked softmax, width 7, causal mask of −1e9",
    inputs: (r) => [operand([2, 3, 5, 4], r, 3), operand([2, 3, 7, 4], r, 3), operand([2, 3, 7, 4], r)],
    f: (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, causalBias(2, 5, 7), 0.7),
  },
  {
    name: "attention's masked softmax, width 7",
    inputs: (r) => [operand([2, 3, 7, 4], r, 3), operand([2, 3, 7, 4], r, 3), operand([2, 3, 7, 4], r)],
    f: (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, tf.zeros([2, 1, 7, 7]) as tf.Tensor4D, 0.7),
  },
];

for (const c of CASES) {
  test(`${c.name}: SIMD on wasm equals the JavaScript kernels on cpu, gradients included`, () => {
    const r = new Random(c.name.length);
    const inputs = c.inputs(r);
    const outputSize = on("cpu", inputs, (...xs) => [c.f(...xs)])[0]!.length;
    const args = [...inputs, operand([outputSize], r)];
    const [simd, js] = [on("wasm", args, valueAndGrads(c.f)), on("cpu", args, valueAndGrads(c.f))];
    assert.equal(simd.length, inputs.length + 1);
    simd.forEach((values, i) => assertClose(values, js[i]!, i === 0 ? "value" : `gradient of input ${i - 1}`, 1e-6));
  });
}

test("cross-entropy over a vocabulary of 11, logits from −100 to 80, ignored rows: SIMD equals the JavaScript kernel", () => {
  const r = new Random(3);
  const logits = operand([2, 5, 11], r, 6);
  logits.values[0] = 80;
  logits.values[1] = -100;
  logits.values[13] = -1e9;
  const labels = Array.from({ length: 10 }, (_, i) => (i === 4 ? IGNORE_INDEX : r.int(11)));
  const f = (x: tf.Tensor) => {
    const y = tf.tensor2d(labels, [2, 5], "int32");
    const { value, grads } = tf.valueAndGrads((l: tf.Tensor) => causalLmLoss(l as tf.Tensor3D, y))([x]);
    return [value, tokenNll(x as tf.Tensor3D, y).nll, grads[0]!];
  };
  const [simd, js] = [on("wasm", [logits], f), on("cpu", [logits], f)];
  for (const [i, what] of ["loss", "per-token NLL", "gradient"].entries()) assertClose(simd[i]!, js[i]!, what, 1e-6);
  assert.ok(simd.every((values) => values.every(Number.isFinite)));
});

test("a NaN input gives a NaN output, as in the JavaScript kernels (divergence is detected from the loss)", () => {
  // Two rows of two tokens: each scores its second token from its first; the first row has a NaN logit.
  const values = Float32Array.from({ length: 24 }, (_, i) => (i === 1 ? NaN : (i % 7) / 3));
  const logits: Operand = { shape: [2, 2, 6], values };
  const labels = tf.tensor2d(
    [
      [2, 3],
      [4, 5],
    ],
    [2, 2],
    "int32",
  );
  const nll = on("wasm", [logits], (x) => [tokenNll(x as tf.Tensor3D, labels).nll])[0]!;
  assert.ok(Number.isNaN(nll[0]!) && Number.isFinite(nll[1]!), `row with a NaN logit: ${nll[0]}, the other: ${nll[1]}`);
  // The gradient too: NaN where the JavaScript kernel has NaN.
  const grad = (x: tf.Tensor) => [tf.grad((l: tf.Tensor) => tokenNll(l as tf.Tensor3D, labels).nll.sum())(x)];
  const [simdGrad, jsGrad] = [on("wasm", [logits], grad)[0]!, on("cpu", [logits], grad)[0]!];
  assert.deepEqual(Array.from(simdGrad, Number.isNaN), Array.from(jsGrad, Number.isNaN));
  assert.ok(simdGrad.some(Number.isNaN));
  const gate: Operand = { shape: [5], values: Float32Array.from([1, NaN, -200, 200, 0]) };
  const y = on("wasm", [gate, { shape: [5], values: new Float32Array(5).fill(1) }], (g, u) => [swiGlu(g!, u!)])[0]!;
  assert.ok(Number.isNaN(y[1]!));
  assert.deepEqual([y[2], y[3], y[4]], [-0, 200, 0], "silu(−200) ≈ −0, silu(200) = 200, silu(0) = 0");
});
