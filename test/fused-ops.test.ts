/**
 * The fused operations (src/backend/fused-ops.ts) against the same computations composed of tfjs ops
 * (what they fall back to without their kernels), on wasm and on cpu: values and gradients.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { attention, initBackend, KERNELS, rmsNorm, rotary, swiGlu, tf } from "../src/backend/index.js";
import { causalLmLoss, IGNORE_INDEX, tokenNll } from "../src/models/loss.js";
import { RotaryEmbedding } from "../src/models/rope.js";
import { Random } from "../src/core/random.js";
import { assertClose, causalBias, on, operand, type Operand } from "./helpers/backends.js";

before(async () => {
  await initBackend("cpu"); // registers the fused kernels for cpu too
  await initBackend("wasm");
});

const ALL_KERNELS = Object.values(KERNELS);

interface Case {
  name: string;
  inputs: (r: Random) => Operand[];
  /** The op's value, from the inputs. */
  f: (...xs: tf.Tensor[]) => tf.Tensor;
  /** Which inputs it is differentiated by. */
  wrt: number[];
}

const CASES: Case[] = [
  {
    name: "RMSNorm",
    inputs: (r) => [operand([3, 5, 16], r, 2), operand([16], r)],
    f: (x, w) => rmsNorm(x!, w!, 1e-5),
    wrt: [0, 1],
  },
  {
    name: "rotary embedding",
    inputs: (r) => [operand([2, 3, 7, 8], r)],
    f: (x) => rotary(x!, ...tablesAt(0, 7)),
    wrt: [0],
  },
  {
    name: "rotary embedding at an offset (KV cache)",
    inputs: (r) => [operand([1, 2, 3, 8], r)],
    f: (x) => rotary(x!, ...tablesAt(5, 3)),
    wrt: [0],
  },
  {
    name: "SwiGLU",
    inputs: (r) => [operand([4, 9], r, 4), operand([4, 9], r)],
    f: (gate, up) => swiGlu(gate!, up!),
    wrt: [0, 1],
  },
  {
    name: "attention (the probabilities computed again for the backward pass)",
    inputs: (r) => [operand([2, 3, 5, 4], r, 3), operand([2, 3, 6, 4], r, 3), operand([2, 3, 6, 4], r)],
    f: (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, causalBias(2, 5, 6), 0.3),
    wrt: [0, 1, 2],
  },
];

function tablesAt(start: number, length: number): [tf.Tensor2D, tf.Tensor2D] {
  const { cos, sin } = new RotaryEmbedding(8, 10000, null).tables(start, length);
  return [cos, sin];
}

/** The op's value and its gradients with respect to `wrt` (weighted by fixed random numbers, so every output counts). */
function valueAndGrads(c: Case) {
  return (...xs: tf.Tensor[]) => {
    const w = xs.pop()!;
    const value = c.f(...xs);
    const loss = (...args: tf.Tensor[]) => {
      const all = [...xs];
      c.wrt.forEach((i, k) => (all[i] = args[k]!));
      return c
        .f(...all)
        .mul(w.reshape(value.shape))
        .sum();
    };
    return [value, ...tf.grads(loss)(c.wrt.map((i) => xs[i]!))];
  };
}

for (const backend of ["wasm", "cpu"]) {
  for (const c of CASES) {
    test(`${c.name} on ${backend}: the fused kernels equal tfjs ops, gradients included`, () => {
      const r = new Random(c.name.length);
      const inputs = c.inputs(r);
      const outputSize = on(backend, inputs, (...xs) => [c.f(...xs)])[0]!.length;
      const args = [...inputs, operand([outputSize], r)];
      const fused = on(backend, args, valueAndGrads(c));
      const composed = on(backend, args, valueAndGrads(c), ALL_KERNELS);
      assertClose(fused[0]!, composed[0]!, "value");
      for (const [k, i] of c.wrt.entries()) assertClose(fused[k + 1]!, composed[k + 1]!, `gradient of input ${i}`);
    });
  }

  test(`the causal-LM loss on ${backend}: the fused cross-entropy equals tfjs ops, gradient included`, () => {
    const r = new Random(21);
    const logits = operand([3, 7, 50], r, 4);
    const labels = Array.from({ length: 3 * 7 }, (_, i) => (i % 5 === 2 ? IGNORE_INDEX : r.int(50)));
    const f = (x: tf.Tensor) => {
      const y = tf.tensor2d(labels, [3, 7], "int32");
      const { value, grads } = tf.valueAndGrads((l: tf.Tensor) => causalLmLoss(l as tf.Tensor3D, y))([x]);
      return [value, tokenNll(x as tf.Tensor3D, y).nll, grads[0]!];
    };
    const [fused, composed] = [on(backend, [logits], f), on(backend, [logits], f, ALL_KERNELS)];
    for (const [i, what] of ["loss", "per-token NLL", "gradient"].entries()) assertClose(fused[i]!, composed[i]!, what);
    assert.ok(fused[2]!.some((g) => g !== 0));
  });
}

/** softmax(scale · q kᵀ + bias) v in tfjs's own ops, differentiated by tfjs: the reference for `attention`. */
const plainAttention = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, scale: number) =>
  tf.matMul(tf.softmax(tf.matMul(q, k, false, true).mul(scale).add(bias)), v);

for (const backend of ["wasm", "cpu"]) {
  test(`attention on ${backend}: values and gradients equal tfjs's ops and autograd, with and without the kernels, T ≠ S and a broadcast mask included`, () => {
    for (const [t, s, maskRows] of [
      [5, 6, 2],
      [3, 7, 2], // a KV cache's shape: fewer queries than keys
      [5, 6, 1], // a mask broadcast over the batch: not the fused kernel's layout
    ] as const) {
      const r = new Random(10 * t + s + maskRows);
      const inputs = [operand([2, 3, t, 4], r, 3), operand([2, 3, s, 4], r, 3), operand([2, 3, s, 4], r)];
      const args = [...inputs, operand([2 * 3 * t * 4], r)];
      const withF = (f: Case["f"]): Case => ({ name: "attention", inputs: () => inputs, f, wrt: [0, 1, 2] });
      const ours = withF((q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, causalBias(maskRows, t, s), 0.3));
      const reference = on(backend, args, valueAndGrads(withF((q, k, v) => plainAttention(q!, k!, v!, causalBias(maskRows, t, s), 0.3))));
      for (const without of [[], ALL_KERNELS]) {
        const got = on(backend, args, valueAndGrads(ours), without);
        const where = `${t} × ${s}, mask rows ${maskRows}, ${without.length ? "without" : "with"} the kernels`;
        ["value", "gradient of q", "gradient of k", "gradient of v"].forEach((what, i) =>
          assertClose(got[i]!, reference[i]!, `${where}: ${what}`),
        );
        assert.ok(
          got[2]!.some((g) => g !== 0),
          `${where}: k gets a gradient`,
        );
      }
    }
  });
}

test("the fused cross-entropy rejects a label outside the vocabulary", () => {
  const x = tf.zeros([1, 3, 4]) as tf.Tensor3D;
  const y = tf.tensor2d([[0, 4, 1]], [1, 3], "int32");
  assert.throws(() => tokenNll(x, y), /target 4 is outside the vocabulary \(0…3\)/);
  tf.dispose([x, y]);
});
