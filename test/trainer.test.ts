/** The Trainer's contracts: reproducible, resumable, bounded memory, stops cleanly on NaN and on cancel. */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { FullTrainable, LoraTrainable } from "../src/train/trainable.js";
import { Trainer, type TrainingArguments } from "../src/train/trainer.js";
import { lrMultiplier } from "../src/train/schedule.js";
import { tempDir } from "./helpers/paths.js";
import { tinyData, tinyModel } from "./helpers/tiny-train.js";

before(async () => {
  await initBackend();
});

const ARGS: TrainingArguments = {
  lr: 5e-3,
  batchSize: 3,
  gradAccum: 2,
  maxSteps: 6,
  schedule: "cosine",
  warmupSteps: 2,
  maxGradNorm: 1,
  seed: 5,
};

async function loraTrainer(args: TrainingArguments = ARGS, dropout = 0.1) {
  const { model } = await tinyModel("llama");
  const peft = PeftModel.create(model, { r: 4, targets: ["q_proj", "v_proj", "up_proj"], loraDropout: dropout }, { seed: 1 });
  return new Trainer(new LoraTrainable(peft), tinyData(10), args);
}

const losses = (t: Trainer) => t.history.map((s) => s.loss);

describe("trainer", () => {
  test("training lowers the loss; same seed → identical losses (dropout included); another seed differs", async () => {
    const a = await loraTrainer({ ...ARGS, maxSteps: 12 });
    await a.train();
    assert.ok(a.history.at(-1)!.loss < a.history[0]!.loss, `loss should fall: ${losses(a)}`);
    const b = await loraTrainer({ ...ARGS, maxSteps: 12 });
    await b.train();
    assert.deepEqual(losses(b), losses(a));
    const c = await loraTrainer({ ...ARGS, maxSteps: 12, seed: 6 });
    await c.train();
    assert.notDeepEqual(losses(c), losses(a));
  });

  test("resume from a checkpoint reproduces the uninterrupted run exactly", async () => {
    const whole = await loraTrainer();
    await whole.train();
    const out = tempDir("resume");
    const first = await loraTrainer({ ...ARGS, saveStrategy: "steps", saveSteps: 3, outputDir: out });
    await first.train();
    assert.ok(fs.existsSync(path.join(out, "checkpoint-3", "adapter_model.safetensors")));
    assert.ok(fs.existsSync(path.join(out, "checkpoint-3", "optimizer.safetensors")));
    const resumed = await loraTrainer();
    await resumed.resumeFrom(path.join(out, "checkpoint-3"));
    assert.equal(resumed.step, 3);
    await resumed.train();
    assert.deepEqual(losses(resumed), losses(whole));
  });

  test("cancellation stops at a step boundary, keeps the history, and train() again finishes the run", async () => {
    const controller = new AbortController();
    const t = await loraTrainer({ ...ARGS, signal: controller.signal });
    t.on((e) => {
      if (e.type === "step" && e.log.step === 2) controller.abort();
    });
    const partial = await t.train();
    assert.equal(partial.reason, "cancelled");
    assert.equal(partial.steps, 2);
    assert.equal(t.history.length, 2);
  });

  test("a NaN loss stops the run, names the step, and leaves the weights and the last checkpoint as they were", async () => {
    const out = tempDir("nan");
    const t = await loraTrainer({ ...ARGS, maxSteps: 10, saveStrategy: "steps", saveSteps: 2, outputDir: out });
    const params = t.trainable.trainableParameters();
    t.on((e) => {
      if (e.type === "step" && e.log.step === 3) {
        // Poison a frozen base weight: the next forward produces NaN.
        const [, w] = [...t.trainable.model.namedParameters()].find(([n]) => n.endsWith("down_proj.weight"))!;
        tf.tidy(() => w.assign(w.mul(NaN)));
      }
    });
    let snapshot: Float32Array[] = [];
    t.on((e) => {
      if (e.type === "step" && e.log.step === 3) snapshot = params.map(([, p]) => p.dataSync().slice() as Float32Array);
    });
    const result = await t.train();
    assert.equal(result.reason, "diverged");
    assert.match(result.message!, /^step 4: loss is NaN/);
    assert.equal(result.steps, 3);
    params.forEach(([, p], i) => assert.deepEqual(p.dataSync(), snapshot[i]));
    assert.ok(fs.existsSync(path.join(out, "checkpoint-2", "trainer_state.json")));
  });

  test("tf.memory().numTensors stays flat across many steps (LoRA with dropout, and full fine-tuning)", async () => {
    const lora = await loraTrainer({ ...ARGS, maxSteps: 40, schedule: "linear" });
    const full = new Trainer(new FullTrainable((await tinyModel("gpt2")).model), tinyData(10), { ...ARGS, maxSteps: 40 });
    for (const t of [lora, full]) {
      const counts: number[] = [];
      t.on((e) => {
        if (e.type === "step") counts.push(tf.memory().numTensors);
      });
      await t.train();
      assert.equal(counts[39], counts[2], `tensors grew from ${counts[2]} to ${counts[39]}`);
    }
  });

  test("full fine-tuning trains every weight (tied embeddings included)", async () => {
    const { model } = await tinyModel("llama");
    const before = new Map([...model.namedParameters()].map(([n, p]) => [n, p.dataSync().slice()]));
    const t = new Trainer(new FullTrainable(model), tinyData(6), { ...ARGS, maxSteps: 2, maxGradNorm: 0 });
    await t.train();
    for (const [n, p] of model.namedParameters()) assert.notDeepEqual(p.dataSync(), before.get(n), `${n} did not change`);
  });

  test("schedules follow transformers: linear warmup, then constant / linear decay / half cosine", () => {
    assert.equal(lrMultiplier("constant", 0, 2, 10), 0);
    assert.equal(lrMultiplier("constant", 1, 2, 10), 0.5);
    assert.equal(lrMultiplier("constant", 7, 2, 10), 1);
    assert.equal(lrMultiplier("linear", 2, 2, 10), 1);
    assert.equal(lrMultiplier("linear", 6, 2, 10), 0.5);
    assert.equal(lrMultiplier("linear", 10, 2, 10), 0);
    assert.ok(Math.abs(lrMultiplier("cosine", 6, 2, 10) - 0.5) < 1e-12);
    assert.ok(Math.abs(lrMultiplier("cosine", 4, 2, 10) - 0.5 * (1 + Math.cos(Math.PI / 4))) < 1e-12);
  });
});
