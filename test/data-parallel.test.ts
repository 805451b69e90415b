/**
 * Data-parallel training (the `workers` option): real worker threads, each with its own tfjs backend, on the shipped
 * model tiny-moby. With the same seed, 2 workers must train what 1 does: the same losses to float tolerance, the
 * same final weights, dropout included (masks are keyed by row, not by thread). "auto" (the default) picks the
 * number of threads from the machine and the run.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { activeBlas, initBackend, tf } from "../src/backend/index.js";
import { Random } from "../src/core/random.js";
import type { Example } from "../src/data/batch.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { loadModel } from "../src/models/load.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../src/train/trainable.js";
import { Trainer, type TrainingArguments } from "../src/train/trainer.js";
import { availableCores, autoWorkers, type RunShape } from "../src/train/parallelism.js";
import { createModel } from "../src/models/load.js";
import { parseModelConfig } from "../src/models/config.js";
import { benchShape, randomModel } from "../src/cli/bench-setup.js";
import { model } from "../dsl/index.js";
import { expectCliError, runCli, testDir, writeFile } from "./helpers/cli.js";

/** Random token rows of varied lengths (so parts of a batch pad differently), below tiny-moby's vocabulary. */
function rows(count: number, seed = 5): Example[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => ({ inputIds: Array.from({ length: 6 + random.int(20) }, () => 2 + random.int(1000)) }));
}

interface Trained {
  losses: number[];
  gradNorms: number[];
  weights: Map<string, Float32Array>;
  numTensors: number[];
  evalLosses: number[];
}

async function train(kind: "lora" | "full", args: TrainingArguments, data: Example[]): Promise<Trained> {
  const { model } = await loadModel("tiny-moby");
  const trainable: Trainable =
    kind === "full"
      ? new FullTrainable(model)
      : new LoraTrainable(
          PeftModel.create(model, { r: 4, alpha: 8, loraDropout: 0.1, targets: ["q_proj", "v_proj", "down_proj"] }, { seed: 3 }),
        );
  const trainer = new Trainer(trainable, data, { lr: 1e-3, shuffle: true, seed: 11, ...args });
  const numTensors: number[] = [];
  trainer.on((e) => {
    if (e.type === "step") numTensors.push(tf.memory().numTensors);
  });
  const result = await trainer.train();
  assert.equal(result.reason, "completed", result.message);
  const weights = new Map(trainable.trainableParameters().map(([name, p]) => [name, p.dataSync() as Float32Array]));
  trainer.dispose();
  trainable.parameterRoot.dispose();
  return {
    losses: result.history.map((s) => s.loss),
    gradNorms: result.history.map((s) => s.gradNorm),
    weights,
    numTensors,
    evalLosses: result.evals.map((e) => e.evalLoss),
  };
}

function assertSame(one: Trained, two: Trained, tolerance: { loss: number; weight: number }): void {
  assert.equal(two.losses.length, one.losses.length);
  one.losses.forEach((loss, i) => {
    const relative = Math.abs(two.losses[i]! - loss) / Math.abs(loss);
    assert.ok(relative < tolerance.loss, `step ${i + 1}: loss ${two.losses[i]} with 2 workers, ${loss} with 1 (relative ${relative})`);
  });
  one.gradNorms.forEach((norm, i) => {
    assert.ok(Math.abs(two.gradNorms[i]! - norm) <= 1e-4 * norm + 1e-7, `step ${i + 1}: grad norm ${two.gradNorms[i]} vs ${norm}`);
  });
  assert.deepEqual([...two.weights.keys()], [...one.weights.keys()]);
  let worst = 0;
  for (const [name, a] of one.weights) {
    const b = two.weights.get(name)!;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  assert.ok(worst < tolerance.weight, `final weights differ by up to ${worst}`);
  assert.equal(two.evalLosses.length, one.evalLosses.length);
  one.evalLosses.forEach((loss, i) => {
    assert.ok(Math.abs(two.evalLosses[i]! - loss) <= tolerance.loss * loss, `eval ${i + 1}: ${two.evalLosses[i]} vs ${loss}`);
  });
}

describe("data-parallel training (workers)", () => {
  before(async () => {
    await initBackend();
  });

  test("LoRA with dropout: 2 workers train what 1 does (5 steps, batch 4, gradient accumulation 2) and score the eval data alike", async () => {
    const data = rows(40);
    const args: TrainingArguments = { batchSize: 4, gradAccum: 2, maxSteps: 5, evalData: rows(9, 21), evalSteps: 2 };
    const one = await train("lora", args, data);
    const two = await train("lora", { ...args, workers: 2 }, data);
    assertSame(one, two, { loss: 1e-5, weight: 1e-5 });
    assert.ok(one.losses[4]! < one.losses[0]!, `the loss falls: ${one.losses.join(", ")}`);
    assert.equal(two.evalLosses.length, 3); // steps 2, 4 and the end
  });

  test("full fine-tuning, an odd batch (3 rows over 2 workers): the same losses and weights; the main thread's tensors stay flat", async () => {
    const data = rows(15, 9);
    const args: TrainingArguments = { batchSize: 3, maxSteps: 5 };
    const one = await train("full", args, data);
    const two = await train("full", { ...args, workers: 2 }, data);
    // AdamW divides by √v: where a weight's gradient is near zero, the rounding of another summation order (one
    // product of 3 rows, or 2 + 1) moves the weight by a visible fraction of lr (1e-3). OpenBLAS also rounds by the
    // rows of a product (measured 3.4e-5 here, XNNPACK 5e-6): a tenth of one step at most.
    assertSame(one, two, { loss: 1e-5, weight: activeBlas() ? 1e-4 : 1e-5 });
    assert.deepEqual(two.numTensors, Array(5).fill(two.numTensors[0]), `tensors after each step: ${two.numTensors.join(", ")}`);
  });

  test("evaluation over 2 threads: one-token rows in one thread's part score nothing, as in one; no rows at all fail alike", async () => {
    const evalData = [{ inputIds: [5] }, { inputIds: [7] }, ...rows(3, 17)];
    const args: TrainingArguments = { batchSize: 2, maxSteps: 1, evalData };
    const one = await train("lora", args, rows(4));
    const two = await train("lora", { ...args, workers: 2 }, rows(4));
    assert.ok(Math.abs(two.evalLosses[0]! - one.evalLosses[0]!) <= 1e-6 * one.evalLosses[0]!, `${two.evalLosses} vs ${one.evalLosses}`);
    const failure = async (workers: number) => {
      try {
        await train("lora", { batchSize: 2, maxSteps: 1, evalData: [{ inputIds: [5] }], workers }, rows(4));
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    };
    const [alone, shared] = [await failure(1), await failure(2)];
    assert.match(alone, /no token to score/);
    assert.equal(shared, alone);
  });

  test("a batch of 1 over 2 workers (one idles) and more workers than rows", async () => {
    const data = rows(6, 13);
    const one = await train("lora", { batchSize: 1, maxSteps: 3 }, data);
    const three = await train("lora", { batchSize: 2, gradAccum: 1, maxSteps: 3, workers: 3 }, data);
    const oneOfTwo = await train("lora", { batchSize: 2, maxSteps: 3 }, data);
    assertSame(oneOfTwo, three, { loss: 1e-5, weight: 1e-5 });
    const two = await train("lora", { batchSize: 1, maxSteps: 3, workers: 2 }, data);
    assertSame(one, two, { loss: 1e-5, weight: 1e-5 });
  });
});

describe('workers "auto" (the default)', () => {
  const run: RunShape = {
    cores: 2,
    backend: "wasm",
    parts: 4,
    tokensPerStep: 1024,
    parameters: 30e6,
    full: true,
    steps: 10,
    notReplicable: undefined,
    memoryBytes: 16e9,
    nativeBlas: false,
  };
  test("picks the cores for steps that pay, and one thread with the reason otherwise", () => {
    assert.deepEqual(autoWorkers(run), { workers: 2, why: "2 cores" });
    assert.equal(autoWorkers({ ...run, cores: 8 }).workers, 4, "at most a part per thread");
    assert.equal(autoWorkers({ ...run, full: false, parameters: 3e6, steps: 100 }).workers, 2);
    assert.equal(autoWorkers({ ...run, nativeBlas: true }).workers, 2, "on a native BLAS");
    const single: [Partial<RunShape>, RegExp][] = [
      [{ cores: 1 }, /one core/],
      [{ backend: "tensorflow" }, /tensorflow backend uses the cores itself/],
      [{ notReplicable: "a quantized base model (QLoRA) does not replicate into workers" }, /quantized/],
      [{ parts: 1 }, /one row/],
      [{ parameters: 1e5 }, /steps too short/],
      [{ steps: 1 }, /run too short/],
      [{ memoryBytes: 4e8 }, /too little memory/],
      [{ full: false, parameters: 2e6 }, /steps too short/], // LoRA: ≈ 4 FLOPs per parameter and token, not 6
      [{ nativeBlas: true, full: false, steps: 4 }, /run too short/], // a native BLAS's steps are shorter
    ];
    for (const [change, why] of single) {
      const picked = autoWorkers({ ...run, ...change });
      assert.equal(picked.workers, 1, JSON.stringify(change));
      assert.match(picked.why, why);
    }
  });

  test("LORALAB_CORES (a sweep's share of the machine) overrides the machine's core count", () => {
    assert.equal(availableCores({ LORALAB_CORES: "3" }), 3);
    assert.equal(availableCores({ LORALAB_CORES: "0" }), os.availableParallelism());
    assert.equal(availableCores({}), os.availableParallelism());
  });

  test("a Trainer asks for threads by its model and data: tiny-moby one, a 30 M-parameter Llama the cores, QLoRA one", async (t) => {
    const saved = process.env.LORALAB_CORES;
    process.env.LORALAB_CORES = "2";
    t.after(() => (saved === undefined ? delete process.env.LORALAB_CORES : (process.env.LORALAB_CORES = saved)));
    const { model: tiny } = await loadModel("tiny-moby");
    const onTiny = new Trainer(new FullTrainable(tiny), rows(16), { batchSize: 4, maxSteps: 100 });
    assert.match(onTiny.parallelism.why, /steps too short/);
    onTiny.dispose();
    tiny.dispose();
    const long = Array.from({ length: 8 }, (_, i) => ({ inputIds: Array.from({ length: 256 }, (_, t) => (i * 31 + t) % 8000) }));
    const small = createModel(parseModelConfig(benchShape("small").config, "small"));
    const trainer = new Trainer(new LoraTrainable(PeftModel.create(small, { r: 8 })), long, { batchSize: 4, maxSteps: 8 });
    assert.deepEqual(trainer.parallelism, { workers: 2, why: "2 cores" });
    const pinned = new Trainer(new FullTrainable(small), long, { batchSize: 4, maxSteps: 4, workers: 1 });
    assert.deepEqual(pinned.parallelism, { workers: 1, why: "the workers option" });
    trainer.dispose();
    pinned.dispose();
    small.dispose();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loralab-auto-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const { model: again } = await loadModel("tiny-moby");
    const first = new Trainer(new FullTrainable(again), rows(8), {
      batchSize: 4,
      maxSteps: 2,
      saveStrategy: "steps",
      saveSteps: 1,
      outputDir: dir,
    });
    assert.equal((await first.train()).workers, 1);
    const state = JSON.parse(fs.readFileSync(path.join(dir, "checkpoint-1", "trainer_state.json"), "utf8")) as { workers: number };
    assert.equal(state.workers, 1, "the checkpoint keeps the threads auto chose");
    const resumed = new Trainer(new FullTrainable(again), rows(8), { batchSize: 4, maxSteps: 2 });
    await resumed.resumeFrom(path.join(dir, "checkpoint-1"));
    assert.deepEqual(resumed.parallelism, { workers: 1, why: "as the run chose when it started" });
    first.dispose();
    resumed.dispose();
    again.dispose();
    const quantized = randomModel(benchShape("tiny").config, 0, "nf4-dq");
    const qlora = new Trainer(new LoraTrainable(PeftModel.create(quantized, { r: 2 })), rows(8), { batchSize: 4 });
    assert.match(qlora.parallelism.why, /quantized base model/);
    qlora.dispose();
    quantized.dispose();
  });
});

describe("the DSL's train options", () => {
  test(".train(data, { workers: 2 }) passes the option through: 1 worker's losses, LoRA and full fine-tuning", async () => {
    const base = await model("tiny-moby");
    const data = [
      "The whale swam far.",
      "Call me Ishmael.",
      "The sea was grey and cold.",
      "A ship sailed at dawn.",
      "He saw the white whale.",
    ].map((text) => ({ text }));
    for (const method of [() => base.lora({ r: 2, dropout: 0.2 }), () => base.full()]) {
      const options = { maxSteps: 3, batchSize: 3, lr: 1e-3, runsDir: false as const };
      const one = (await method().train(data, options)).history.map((s) => s.loss);
      const two = (await method().train(data, { ...options, workers: 2 })).history.map((s) => s.loss);
      two.forEach((loss, i) => assert.ok(Math.abs(loss - one[i]!) <= 1e-5 * one[i]!, `step ${i + 1}: ${loss} vs ${one[i]}`));
    }
  });
});

describe("loralab train --workers", () => {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "loralab-dp-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const data = writeFile(
    dir,
    "train.jsonl",
    rows(8)
      .map((r) => JSON.stringify({ input_ids: r.inputIds }))
      .join("\n") + "\n",
  );

  test("a bad value is a one-line user error", () => {
    expectCliError(["train", "--model", "tiny-moby", "--data", data, "--workers", "0"], ["--workers", "a positive integer", "0"]);
    expectCliError(["train", "--model", "tiny-moby", "--data", data, "--workers", "1.5"], ["--workers"]);
    expectCliError(
      ["train", "--model", "tiny-moby", "--data", data, "--workers", "many"],
      ["--workers", 'a positive integer or "auto"', "many"],
    );
  });

  test("trains with 2 workers and exits (the workers end with the run); the losses are 1 worker's", (t) => {
    const out = testDir(t, "dp-cli");
    const run = (workers: number) => {
      const started = Date.now();
      const r = runCli([
        "train",
        "--model",
        "tiny-moby",
        "--data",
        data,
        "--lora",
        "r=2",
        "--steps",
        "3",
        "--batch",
        "4",
        "--workers",
        String(workers),
        "--out",
        path.join(out, `w${workers}`),
        "--json",
      ]);
      assert.equal(r.status, 0, r.stderr);
      return {
        json: JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { steps: { loss: number }[] },
        seconds: (Date.now() - started) / 1000,
      };
    };
    const one = run(1).json.steps.map((s) => s.loss);
    const two = run(2).json.steps.map((s) => s.loss);
    assert.equal(two.length, 3);
    two.forEach((loss, i) => assert.ok(Math.abs(loss - one[i]!) <= 1e-5 * one[i]!, `step ${i + 1}: ${loss} vs ${one[i]}`));
  });
});
