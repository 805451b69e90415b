/**
 * The Trainer's contracts: reproducible, resumable, bounded memory, stops cleanly on NaN and on cancel, checks its
 * arguments and its data (one message shape), cuts rows to the model's context.
 */
import { before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { readSafetensors, writeSafetensors } from "../src/checkpoint/safetensors.js";
import { UserError } from "../src/core/errors.js";
import type { Example } from "../src/data/batch.js";
import type { LoadedModel } from "../src/models/load.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { AdamW } from "../src/train/optimizer.js";
import { FullTrainable, LoraTrainable } from "../src/train/trainable.js";
import { Trainer, type TrainingArguments } from "../src/train/trainer.js";
import { lrMultiplier } from "../src/train/schedule.js";
import { tempDir } from "./helpers/paths.js";
import { tinyData, tinyModel } from "./helpers/tiny-train.js";
import type { TinyKind } from "./helpers/tiny-models.js";

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

/** A seeded tiny checkpoint, loaded; its folder and weights go when the test ends. */
async function tiny(t: TestContext, kind: TinyKind = "llama"): Promise<LoadedModel> {
  const loaded = await tinyModel(kind);
  t.after(() => {
    loaded.model.dispose();
    fs.rmSync(path.dirname(loaded.dir), { recursive: true, force: true });
  });
  return loaded;
}

/** A temp folder removed when the test ends. */
function scratch(t: TestContext, name: string): string {
  const dir = tempDir(name);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function loraTrainer(t: TestContext, args: TrainingArguments = ARGS, data: Example[] = tinyData(10)) {
  const { model } = await tiny(t);
  const peft = PeftModel.create(model, { r: 4, targets: ["q_proj", "v_proj", "up_proj"], loraDropout: 0.1 }, { seed: 1 });
  return new Trainer(new LoraTrainable(peft), data, args);
}

const losses = (t: Trainer) => t.history.map((s) => s.loss);

test("training lowers the loss", async (t) => {
  const a = await loraTrainer(t, { ...ARGS, maxSteps: 12 });
  await a.train();
  assert.ok(a.history.at(-1)!.loss < a.history[0]!.loss, `loss should fall: ${losses(a)}`);
});

test("the same seed gives identical losses (dropout included); another seed differs", async (t) => {
  const a = await loraTrainer(t, { ...ARGS, maxSteps: 12 });
  await a.train();
  const b = await loraTrainer(t, { ...ARGS, maxSteps: 12 });
  await b.train();
  assert.deepEqual(losses(b), losses(a));
  const c = await loraTrainer(t, { ...ARGS, maxSteps: 12, seed: 6 });
  await c.train();
  assert.notDeepEqual(losses(c), losses(a));
});

test("resume from a checkpoint reproduces the uninterrupted run exactly", async (t) => {
  const whole = await loraTrainer(t);
  await whole.train();
  const out = scratch(t, "resume");
  const first = await loraTrainer(t, { ...ARGS, saveStrategy: "steps", saveSteps: 3, outputDir: out });
  await first.train();
  assert.ok(fs.existsSync(path.join(out, "checkpoint-3", "adapter_model.safetensors")));
  assert.ok(fs.existsSync(path.join(out, "checkpoint-3", "optimizer.safetensors")));
  const resumed = await loraTrainer(t);
  await resumed.resumeFrom(path.join(out, "checkpoint-3"));
  assert.equal(resumed.step, 3);
  await resumed.train();
  assert.deepEqual(losses(resumed), losses(whole));
});

test("a checkpoint whose trainer_state.json lacks a field is a user error naming the file and the field", async (t) => {
  const out = scratch(t, "bad-state");
  const first = await loraTrainer(t, { ...ARGS, maxSteps: 2, saveStrategy: "steps", saveSteps: 2, outputDir: out });
  await first.train();
  const file = path.join(out, "checkpoint-2", "trainer_state.json");
  const { step: _step, ...rest } = JSON.parse(fs.readFileSync(file, "utf8"));
  fs.writeFileSync(file, JSON.stringify(rest));
  const resumed = await loraTrainer(t);
  await assert.rejects(resumed.resumeFrom(path.join(out, "checkpoint-2")), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.equal(e.message, `${file}: step: expected a non-negative integer (the field is required), got nothing`);
    return true;
  });
});

test("cancellation stops at a step boundary and keeps the history", async (t) => {
  const controller = new AbortController();
  const trainer = await loraTrainer(t, { ...ARGS, signal: controller.signal });
  trainer.on((e) => {
    if (e.type === "step" && e.log.step === 2) controller.abort();
  });
  const partial = await trainer.train();
  assert.equal(partial.reason, "cancelled");
  assert.equal(partial.steps, 2);
  assert.equal(trainer.history.length, 2);
});

test("a NaN loss stops the run, names the step, and leaves the weights and the last checkpoint as they were", async (t) => {
  const out = scratch(t, "nan");
  const trainer = await loraTrainer(t, { ...ARGS, maxSteps: 10, saveStrategy: "steps", saveSteps: 2, outputDir: out });
  const params = trainer.trainable.trainableParameters();
  let snapshot: Float32Array[] = [];
  trainer.on((e) => {
    if (e.type === "step" && e.log.step === 3) {
      snapshot = params.map(([, p]) => p.dataSync().slice() as Float32Array);
      // Poison a frozen base weight: the next forward produces NaN.
      const [, w] = [...trainer.trainable.model.namedParameters()].find(([n]) => n.endsWith("down_proj.weight"))!;
      tf.tidy(() => w.assign(w.mul(NaN)));
    }
  });
  const result = await trainer.train();
  assert.equal(result.reason, "diverged");
  assert.match(result.message!, /^step 4: loss is NaN/);
  assert.equal(result.steps, 3);
  params.forEach(([, p], i) => assert.deepEqual(p.dataSync(), snapshot[i]));
  assert.ok(fs.existsSync(path.join(out, "checkpoint-2", "trainer_state.json")));
});

test("AdamW refuses an update that would make a weight infinite, changing neither weights nor moments", () => {
  const p = tf.variable(tf.tensor1d([1, 2, 3]));
  const g = tf.tensor1d([1, -1, 0.5]);
  const optimizer = new AdamW();
  assert.equal(optimizer.apply([["w", p]], new Map([["w", g]]), 1e39), false);
  assert.deepEqual([...p.dataSync()], [1, 2, 3]);
  assert.equal(optimizer.step, 0);
  assert.equal(optimizer.stateTensors().size, 0);
  assert.equal(optimizer.apply([["w", p]], new Map([["w", g]]), 0.1), true);
  assert.equal(optimizer.step, 1);
  tf.dispose([p, g]);
  optimizer.dispose();
});

test("an update that would make weights non-finite stops the run as diverged and is not applied", async (t) => {
  // A checkpoint whose optimizer moments are huge (finite, e.g. from a corrupted file): the next update overflows.
  const out = scratch(t, "overflow");
  const first = await loraTrainer(t, { ...ARGS, maxSteps: 2, saveStrategy: "steps", saveSteps: 2, outputDir: out });
  await first.train();
  const file = path.join(out, "checkpoint-2", "optimizer.safetensors");
  const moments = await readSafetensors(file);
  for (const [name, m] of moments) if (name.endsWith(".exp_avg")) m.data.fill(3e38);
  await writeSafetensors(file, moments, { step: "2" });
  const resumed = await loraTrainer(t);
  await resumed.resumeFrom(path.join(out, "checkpoint-2"));
  const params = resumed.trainable.trainableParameters();
  const before = params.map(([, p]) => p.dataSync().slice());
  const result = await resumed.train();
  assert.equal(result.reason, "diverged");
  assert.match(result.message!, /^step 3: the update \(lr [\d.e-]+\) would make weights non-finite; it was not applied$/);
  assert.equal(result.steps, 2);
  params.forEach(([, p], i) => assert.deepEqual(p.dataSync(), before[i]));
});

/** Trains 40 steps and checks that the number of live tensors after step 40 is what it was after step 3. */
async function assertTensorCountFlat(trainer: Trainer): Promise<void> {
  const counts: number[] = [];
  trainer.on((e) => {
    if (e.type === "step") counts.push(tf.memory().numTensors);
  });
  await trainer.train();
  assert.equal(counts.length, 40);
  assert.equal(counts[39], counts[2], `tensors grew from ${counts[2]} to ${counts[39]}`);
}

test("tf.memory().numTensors stays flat across many LoRA steps (with dropout)", async (t) => {
  await assertTensorCountFlat(await loraTrainer(t, { ...ARGS, maxSteps: 40, schedule: "linear" }));
});

test("tf.memory().numTensors stays flat across many full fine-tuning steps", async (t) => {
  await assertTensorCountFlat(new Trainer(new FullTrainable((await tiny(t, "gpt2")).model), tinyData(10), { ...ARGS, maxSteps: 40 }));
});

test("full fine-tuning trains every weight (tied embeddings included)", async (t) => {
  const { model } = await tiny(t);
  const before = new Map([...model.namedParameters()].map(([n, p]) => [n, p.dataSync().slice()]));
  const trainer = new Trainer(new FullTrainable(model), tinyData(6), { ...ARGS, maxSteps: 2, maxGradNorm: 0 });
  await trainer.train();
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

/** Bad training arguments and the message each gets (the tiny model's context is 64 positions). */
const BAD_ARGUMENTS: [string, Record<string, unknown>, string][] = [
  ["an absurd learning rate", { lr: 1e30 }, "training arguments: lr: expected a number in (0, 1], got 1e+30"],
  ["a zero batch size", { batchSize: 0 }, "training arguments: batchSize: expected a positive integer, got 0"],
  ["a fractional step count", { maxSteps: 2.5 }, "training arguments: maxSteps: expected a positive integer, got 2.5"],
  ["an unknown schedule", { schedule: "cos" }, 'training arguments: schedule: expected one of "constant", "linear" or "cosine", got "cos"'],
  ["betas out of range", { betas: [0.9, 1] }, "training arguments: betas: expected two numbers in [0, 1), got [0.9,1]"],
  ["a misspelt option", { warmup: 4 }, 'training arguments: unknown option "warmup"; known: lr, batchSize'],
  ["steps and epochs together", { maxSteps: 3, epochs: 2 }, "training arguments: epochs: expected no value when maxSteps is given, got 2"],
  [
    "checkpoints without a folder",
    { saveStrategy: "steps" },
    'training arguments: outputDir: expected a directory (saveStrategy "steps" writes',
  ],
  [
    "maxLength above the context",
    { maxLength: 65 },
    "training arguments: maxLength: expected at most the model's context (64 tokens), got 65",
  ],
];

for (const [what, args, message] of BAD_ARGUMENTS) {
  test(`training arguments: ${what} is a user error before anything trains`, async (t) => {
    const { model } = await tiny(t);
    const peft = PeftModel.create(model, { r: 2 }, { seed: 1 });
    assert.throws(
      () => new Trainer(new LoraTrainable(peft), tinyData(4), args as TrainingArguments),
      (e: unknown) => e instanceof UserError && e.message.startsWith(message),
    );
  });
}

test("rows longer than the model's context are cut to it by default, and counted", async (t) => {
  const long = { inputIds: Array.from({ length: 70 }, (_, i) => i % 90) };
  const trainer = await loraTrainer(t, { ...ARGS, maxSteps: 1 }, [long, ...tinyData(3)]);
  assert.equal(trainer.options.maxLength, 64);
  assert.equal(trainer.data.cutRows, 1);
  assert.deepEqual(trainer.data.examples[0]!.inputIds, long.inputIds.slice(0, 64));
  assert.equal(trainer.data.cutNotice(), "1 of 4 rows were longer than 64 tokens and were cut to 64");
  assert.equal((await trainer.train()).reason, "completed");
});

test("maxLength cuts rows (and their labels) to that many tokens", async (t) => {
  const rows = [{ inputIds: [1, 2, 3, 4, 5, 6], labels: [-100, -100, 3, 4, 5, 6] }, ...tinyData(2)];
  const trainer = await loraTrainer(t, { ...ARGS, maxLength: 4 }, rows);
  assert.deepEqual(trainer.data.examples[0], { inputIds: [1, 2, 3, 4], labels: [-100, -100, 3, 4] });
  assert.equal(trainer.data.cutRows, rows.filter((r) => r.inputIds.length > 4).length);
});

test("data without a token to predict (every row one token long) is a user error", async (t) => {
  await assert.rejects(
    loraTrainer(t, ARGS, [{ inputIds: [5] }, { inputIds: [7] }]),
    (e: unknown) => e instanceof UserError && e.message.startsWith("training data: no tokens to train on: none of the 2 rows"),
  );
});

test("a micro-batch of one-token rows adds nothing: the step equals the step without it", async (t) => {
  const rows = tinyData(2, 9);
  const oneTokenRows = [{ inputIds: [5] }, { inputIds: [7] }];
  const options = { lr: 1e-2, maxSteps: 1, batchSize: 2, shuffle: false };
  const mixed = await loraTrainer(t, { ...options, gradAccum: 2 }, [...oneTokenRows, ...rows]);
  const plain = await loraTrainer(t, { ...options, gradAccum: 1 }, rows);
  await mixed.train();
  await plain.train();
  assert.equal(mixed.history[0]!.loss, plain.history[0]!.loss);
  assert.equal(mixed.history[0]!.gradNorm, plain.history[0]!.gradNorm);
  const weights = (trainer: Trainer) => trainer.trainable.trainableParameters().map(([, p]) => [...p.dataSync()]);
  assert.deepEqual(weights(mixed), weights(plain));
});
