/**
 * The backward pass that frees as it goes (src/backend/backprop.ts) against tfjs's own: the same
 * gradients bit for bit, nothing leaked, and a lower peak of live tensors; and the ops that keep less
 * for the backward pass (src/backend/fused-ops.ts) against the tfjs ops they stand for.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { addSameShape, initBackend, tf, viewAs } from "../src/backend/index.js";
import { matMulTransposed } from "../src/nn/layers.js";
import { BENCH_SHAPES, randomModel } from "../src/cli/bench-setup.js";
import { causalLmLoss } from "../src/models/loss.js";
import { PeftModel } from "../src/lora/peft-model.js";
import type { CausalLM } from "../src/models/causal-lm.js";
import { Random } from "../src/core/random.js";

type Gradients = (f: () => tf.Scalar, xs: tf.Variable[]) => { value: tf.Scalar; grads: tf.Tensor[] };

const engine = () => tf.engine() as unknown as { gradients: Gradients };
/** tfjs's own Engine.gradients, which the lean walk shadows on the engine instance. */
const stock: Gradients = (f, xs) => Object.getPrototypeOf(engine()).gradients.call(engine(), f, xs, undefined, true);
const lean: Gradients = (f, xs) => engine().gradients(f, xs, undefined, true);

let model: CausalLM;
let ids: tf.Tensor2D;

before(async () => {
  await initBackend("wasm");
  model = randomModel(BENCH_SHAPES.tiny!.config, 3);
  const random = new Random(4);
  ids = tf.tensor2d(
    Array.from({ length: 2 * 16 }, () => random.int(model.config.vocabSize)),
    [2, 16],
    "int32",
  );
});

async function run(gradients: Gradients, xs: tf.Variable[]): Promise<{ loss: number; grads: Float32Array[]; peak: number }> {
  const numTensors = tf.memory().numTensors;
  let result: ReturnType<Gradients> | undefined;
  // tf.profile records the high-water mark of live tensor bytes.
  const { peakBytes } = await tf.profile(() => {
    result = gradients(() => causalLmLoss(model.forward(ids), ids), xs);
    return [];
  });
  const { value, grads } = result!;
  const out = { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync() as Float32Array), peak: peakBytes };
  tf.dispose([value, ...grads]);
  assert.equal(tf.memory().numTensors, numTensors, "no tensor leaked");
  return out;
}

test("full fine-tuning: the lean backward pass gives tfjs's gradients bit for bit, with a lower peak", async () => {
  const xs = [...model.namedParameters()].map(([, p]) => p);
  for (const p of xs) p.trainable = true; // as FullTrainable marks them (frozen weights get no gradient)
  const [mine, theirs] = [await run(lean, xs), await run(stock, xs)];
  for (const p of xs) p.trainable = false;
  assert.equal(mine.loss, theirs.loss);
  for (const [i, g] of mine.grads.entries()) assert.deepEqual(g, theirs.grads[i], `gradient ${i}`);
  assert.ok(mine.peak < theirs.peak, `peak ${mine.peak} vs tfjs's ${theirs.peak}`);
});

test("LoRA: the lean backward pass gives tfjs's gradients bit for bit", () => {
  const peft = PeftModel.create(model, { r: 4, targets: ["q_proj", "v_proj"], initLoraWeights: false });
  const xs = peft.trainableParameters().map(([, p]) => p);
  const f = () => causalLmLoss(peft.forward(ids), ids);
  const [mine, theirs] = [lean(f, xs), stock(f, xs)];
  assert.deepEqual(mine.value.dataSync(), theirs.value.dataSync());
  for (const [i, g] of mine.grads.entries()) assert.deepEqual(g.dataSync(), theirs.grads[i]!.dataSync(), `gradient ${i}`);
  tf.dispose([mine.value, theirs.value, ...mine.grads, ...theirs.grads]);
});

test("ops that keep less for the backward pass give tfjs's values and gradients", () => {
  const random = new Random(9);
  const values = (n: number) => Array.from({ length: n }, () => random.next() - 0.5);
  const x = tf.tensor2d(values(6 * 4), [6, 4]);
  const y = tf.tensor2d(values(6 * 4), [6, 4]);
  const w = tf.variable(tf.tensor2d(values(5 * 4), [5, 4]), false);
  const weights = tf.tensor2d(values(6 * 5), [6, 5]);
  // Each uses both inputs, so both have gradients.
  const pairs: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ["viewAs", (a, b) => viewAs(a, [4, 6]).mul(viewAs(b, [4, 6])), (a, b) => a.reshape([4, 6]).mul(b.reshape([4, 6]))],
    ["addSameShape", (a, b) => addSameShape(a, b.mul(b)), (a, b) => a.add(b.mul(b))],
    [
      "x·Wᵀ with W frozen",
      (a, b) => matMulTransposed(a.mul(b) as tf.Tensor2D, w as unknown as tf.Tensor2D).mul(weights),
      (a, b) => tf.matMul(a.mul(b), w, false, true).mul(weights),
    ],
  ];
  for (const [name, mine, theirs] of pairs) {
    const [m, t] = [mine, theirs].map((f) => tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => f(a, b).sum())([x, y]));
    assert.deepEqual(m!.value.dataSync(), t!.value.dataSync(), `${name}: value`);
    for (const i of [0, 1]) assert.deepEqual(m!.grads[i]!.dataSync(), t!.grads[i]!.dataSync(), `${name}: gradient ${i}`);
    tf.dispose([m!.value, t!.value, ...m!.grads, ...t!.grads]);
  }
  tf.dispose([x, y, w, weights]);
});
