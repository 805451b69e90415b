/**
 * Activation checkpointing (`gradientCheckpointing: true`): the gradients are the ones the plain backward pass
 * computes (dropout masks replayed), a Trainer takes the same steps with it as without, the tensors it holds come
 * back, and the peak of tensor memory of a training step drops on a longer sequence.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { initBackend, tf } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { tokenNll } from "../src/models/loss.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { ActivationCheckpointing } from "../src/nn/checkpointing.js";
import { LoraTrainable } from "../src/train/trainable.js";
import { Trainer } from "../src/train/trainer.js";
import { Random } from "../src/core/random.js";
import type { QuantizeFormat } from "../src/quant/frozen-weight.js";

const loaded = new Map<string, LoadedModel>();

before(async () => {
  await initBackend();
});
after(() => {
  for (const m of loaded.values()) m.model.dispose();
});

async function shipped(quantize?: QuantizeFormat): Promise<LoadedModel> {
  const key = quantize ?? "f32";
  if (!loaded.has(key)) loaded.set(key, await loadModel("tiny-moby", { quantize }));
  return loaded.get(key)!;
}

function tokens(batch: number, length: number, seed: number): tf.Tensor2D {
  const random = new Random(seed);
  return tf.tensor2d(
    Array.from({ length: batch * length }, () => random.int(1024)),
    [batch, length],
    "int32",
  );
}

/** An adapter on every linear layer with non-zero B (so every gradient is non-trivial) and dropout. */
function adapted(m: LoadedModel, name: string): PeftModel {
  const peft = PeftModel.create(m.model, { r: 4, targets: "all-linear", dropout: 0.1 }, { adapterName: name, seed: 5 });
  tf.tidy(() => {
    for (const [, p] of peft.trainableParameters()) p.assign(tf.randomNormal(p.shape, 0, 0.05, "float32", 9));
  });
  peft.setTraining(true);
  return peft;
}

/** Loss and gradients of one step, with or without checkpointing, from the same dropout stream state. */
function step(peft: PeftModel, ids: tf.Tensor2D, checkpointing: boolean) {
  const random = peft.randomStreams.save();
  const c = checkpointing ? new ActivationCheckpointing(peft.randomStreams) : undefined;
  const vars = peft.trainableParameters().map(([, p]) => p);
  const { value, grads } = tf.variableGrads(
    () => tf.tidy(() => tokenNll(peft.forward(ids, { checkpointing: c }), ids).nll.mean() as tf.Scalar),
    vars,
  );
  c?.dispose();
  const after = peft.randomStreams.save();
  peft.randomStreams.restore(random);
  const out = {
    loss: value.dataSync()[0]!,
    grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dataSync() as Float32Array])),
    after,
  };
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

for (const quantize of [undefined, "nf4-dq"] as const) {
  test(`${quantize ?? "float32"} base: checkpointed gradients equal the plain backward's, dropout included, and no tensor is left behind`, async () => {
    const m = await shipped(quantize);
    const peft = adapted(m, `grads_${quantize ?? "f32"}`.replace("-", "_"));
    const ids = tokens(2, 96, 1);
    const plain = step(peft, ids, false);
    const before = tf.memory().numTensors;
    const checkpointed = step(peft, ids, true);
    assert.equal(tf.memory().numTensors, before, "checkpointing frees every tensor it held");
    assert.equal(checkpointed.loss, plain.loss);
    assert.deepEqual([...(checkpointed.after as Map<string, number>)], [...(plain.after as Map<string, number>)], "same draws");
    let compared = 0;
    for (const [name, g] of Object.entries(plain.grads)) {
      const c = checkpointed.grads[name]!;
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < g.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(g[i]! - c[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(g[i]!));
      }
      assert.ok(maxAbs > 0, `${name}: a zero gradient would prove nothing`);
      assert.ok(maxDiff <= 1e-6 * maxAbs, `${name}: checkpointed gradient differs by ${maxDiff} (max ${maxAbs})`);
      compared++;
    }
    assert.equal(compared, 2 * 7 * 4, "A and B of every adapted layer");
    ids.dispose();
    peft.deleteAdapter(peft.activeAdapters[0]!);
  });
}

test("a Trainer with gradientCheckpointing takes the same steps as without (dropout on, 4 steps)", async () => {
  const m = await shipped();
  const random = new Random(2);
  const rows = Array.from({ length: 12 }, () => ({ inputIds: Array.from({ length: 20 + random.int(40) }, () => random.int(1024)) }));
  const losses = (gradientCheckpointing: boolean) => {
    const peft = PeftModel.create(m.model, { r: 4, dropout: 0.1 }, { adapterName: `trainer_${gradientCheckpointing}`, seed: 3 });
    const trainer = new Trainer(new LoraTrainable(peft), rows, { maxSteps: 4, batchSize: 3, lr: 1e-2, gradientCheckpointing });
    return trainer.train().then((r) => {
      trainer.dispose();
      peft.deleteAdapter(peft.activeAdapters[0]!);
      return r.history.map((h) => [h.loss, h.gradNorm]);
    });
  };
  const plain = await losses(false);
  const checkpointed = await losses(true);
  for (let i = 0; i < plain.length; i++) {
    assert.ok(Math.abs(plain[i]![0]! - checkpointed[i]![0]!) <= 1e-5, `step ${i + 1} loss: ${plain[i]} vs ${checkpointed[i]}`);
    assert.ok(
      Math.abs(plain[i]![1]! - checkpointed[i]![1]!) <= 1e-5 * plain[i]![1]!,
      `step ${i + 1} grad norm: ${plain[i]} vs ${checkpointed[i]}`,
    );
  }
});

test("checkpointing lowers the peak of tensor memory of a training step on a 256-token sequence by more than half", async (t) => {
  const m = await shipped();
  const peft = adapted(m, "peak");
  t.after(() => peft.deleteAdapter("peak"));
  const ids = tokens(2, 256, 4);
  const peak = async (checkpointing: boolean) => {
    const start = tf.memory().numBytes;
    const profile = await tf.profile(() => {
      step(peft, ids, checkpointing);
      return [];
    });
    return profile.peakBytes - start;
  };
  const plain = await peak(false);
  const checkpointed = await peak(true);
  t.diagnostic(
    `peak above the weights: plain ${(plain / 2 ** 20).toFixed(1)} MiB, checkpointed ${(checkpointed / 2 ** 20).toFixed(1)} MiB`,
  );
  assert.ok(checkpointed < 0.5 * plain, `checkpointed ${checkpointed} vs plain ${plain}`);
  ids.dispose();
});
