/**
 * Evaluation on every core (train/eval-threads.ts): real worker threads, each with its own tfjs backend and a
 * replica of the model. The work is dealt out in whole batches of windows and whole generations, so the threaded
 * numbers must equal one thread's exactly, for a plain model, a LoRA model, and one with its adapters switched
 * off; through the library, the DSL and the CLI. "auto" decides from the work and the machine.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { initBackend, tf } from "../src/backend/index.js";
import { UserError } from "../src/core/errors.js";
import { Random } from "../src/core/random.js";
import type { Example } from "../src/data/batch.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { generationScores } from "../src/metrics/generation-eval.js";
import { evaluate, generationScoresOn, perplexityOn } from "../src/metrics/evaluate.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { benchShape, randomModel } from "../src/cli/bench-setup.js";
import { EvalThreads, withEvalThreads } from "../src/train/eval-threads.js";
import { autoEvalWorkers, type EvalShape } from "../src/train/parallelism.js";
import { model as dslModel } from "../dsl/index.js";
import { expectCliError, runCli, testDir, writeFile } from "./helpers/cli.js";

/** Random token rows of varied lengths, below tiny-moby's vocabulary. */
function rows(count: number, seed = 5): Example[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => ({ inputIds: Array.from({ length: 6 + random.int(60) }, () => 2 + random.int(1000)) }));
}

const PAIRS = ["Call me Ishmael.", "The whale", "It was the", "Some years ago", "The sea", "Queequeg"].map((prompt) => ({
  prompt,
  completion: "never mind how long precisely",
}));

let moby: LoadedModel;
let peft: PeftModel;

before(async () => {
  await initBackend();
  moby = await loadModel("tiny-moby");
  peft = PeftModel.create(moby.model, { r: 4, alpha: 8, targets: ["q_proj", "v_proj"] }, { seed: 3 });
  // lora_B starts at zero: give the adapter weights that change the outputs.
  const random = new Random(9);
  for (const [, p] of peft.trainableParameters())
    p.assign(
      tf.tensor(
        Float32Array.from({ length: p.size }, () => 0.05 * (random.next() - 0.5)),
        p.shape,
      ),
    );
});

after(() => peft.base.dispose());

describe("evaluation on every core", () => {
  const options = { batchSize: 3, maxLength: 32, stride: 16 };

  test("perplexity on 2 threads equals one thread's exactly (sliding windows, several batches), and leaks no tensor", async () => {
    const one = perplexity(peft, rows(17), options);
    const tensors = tf.memory().numTensors;
    const threads = new EvalThreads(peft, { workers: 2 });
    try {
      const two = await perplexityOn(threads, rows(17), options);
      assert.equal(threads.parallelism.workers, 2);
      assert.deepEqual(two, one);
      const [worker] = await threads.workerMemory();
      await perplexityOn(threads, rows(17), options);
      assert.deepEqual(await threads.workerMemory(), [worker], "the worker's tensors after a second evaluation");
    } finally {
      await threads.close();
    }
    assert.equal(tf.memory().numTensors, tensors);
  });

  test("replicas compute as the original: adapters switched off, and a plain model", async () => {
    const on = perplexity(peft, rows(9), options);
    const offOne = peft.withAdaptersDisabled(() => perplexity(peft, rows(9), options));
    const within = <T>(fn: () => T): T => peft.withAdaptersDisabled(fn);
    const offTwo = await withEvalThreads(peft, { workers: 2, within }, (t) => perplexityOn(t, rows(9), options));
    assert.deepEqual(offTwo, offOne);
    assert.notEqual(offOne.loss, on.loss, "the adapter changes the loss, so the test sees whether the replicas switched it off");
    const plain = randomModel(benchShape("tiny").config, 4);
    try {
      const small = rows(7).map((e) => ({ inputIds: e.inputIds.map((id) => id % 512) }));
      const plainOne = perplexity(plain, small, { batchSize: 2 });
      const plainThree = await withEvalThreads(plain, { workers: 3 }, (t) => perplexityOn(t, small, { batchSize: 2 }));
      assert.deepEqual(plainThree, plainOne);
    } finally {
      plain.dispose();
    }
  });

  test("adapters switched off with a modules_to_save copy: the replicas compute with the base model's values", async () => {
    const model = (await loadModel("tiny-moby")).model;
    const saving = PeftModel.create(model, { r: 2, targets: ["q_proj"], modulesToSave: ["norm"] }, { seed: 4 });
    try {
      // The adapter's copy of the final norm differs from the base model's.
      for (const [name, p] of saving.trainableParameters()) if (name.includes("norm")) p.assign(p.mul(1.5));
      const data = rows(8);
      const on = perplexity(saving, data, { batchSize: 2 });
      const offOne = saving.withAdaptersDisabled(() => perplexity(saving, data, { batchSize: 2 }));
      const within = <T>(fn: () => T): T => saving.withAdaptersDisabled(fn);
      const offTwo = await withEvalThreads(saving, { workers: 2, within }, (t) => perplexityOn(t, data, { batchSize: 2 }));
      assert.notEqual(offOne.loss, on.loss);
      assert.deepEqual(offTwo, offOne);
      assert.equal(saving.adaptersDisabled, false, "switched off only around the computations");
    } finally {
      saving.base.dispose();
    }
  });

  test("generation metrics on 3 threads equal one thread's: the same texts and scores, greedy and sampled", async () => {
    const tokenizer = moby.tokenizer!;
    for (const sampling of [{}, { temperature: 0.8, seed: 7 }]) {
      const one = generationScores(peft, tokenizer, PAIRS, ["bleu", "chrf", "exact_match"], { maxNewTokens: 12, ...sampling });
      const three = await withEvalThreads(peft, { workers: 3 }, (t) =>
        generationScoresOn(t, tokenizer, PAIRS, ["bleu", "chrf", "exact_match"], { maxNewTokens: 12, ...sampling }),
      );
      assert.deepEqual(three, one);
      assert.ok(new Set(one.examples.map((e) => e.generated)).size > 1, "the prompts lead to different texts");
    }
  });

  test("evaluate() on 2 threads gives one thread's perplexity and BLEU", async () => {
    const input = { examples: () => rows(6), rows: () => PAIRS };
    const generation = { tokenizer: moby.tokenizer, eosTokenIds: moby.eosTokenIds };
    const one = await withEvalThreads(peft, { workers: 1 }, (t) => evaluate(t, input, ["perplexity", "bleu"], generation));
    const two = await withEvalThreads(peft, { workers: 2 }, async (t) => {
      const scores = await evaluate(t, input, ["perplexity", "bleu"], generation);
      assert.equal(t.parallelism.workers, 2);
      return scores;
    });
    assert.deepEqual(two, one);
  });

  test('"auto" keeps a short evaluation in this thread; a quantized model cannot replicate', async () => {
    const threads = new EvalThreads(peft);
    try {
      await perplexityOn(threads, rows(4), options);
      assert.deepEqual(threads.parallelism, { workers: 1, why: "an evaluation too short to share" });
    } finally {
      await threads.close();
    }
    const quantized = randomModel(benchShape("tiny").config, 1, "nf4");
    try {
      const data = [{ inputIds: [1, 2, 3, 4, 5] }, { inputIds: [5, 4, 3, 2] }];
      await assert.rejects(
        withEvalThreads(quantized, { workers: 2 }, (t) => perplexityOn(t, data, { batchSize: 1 })),
        (e: unknown) =>
          e instanceof UserError &&
          e.message ===
            "workers: 2 needs a model that replicates into workers, but a quantized base model (QLoRA) does not replicate into workers",
      );
    } finally {
      quantized.dispose();
    }
    assert.throws(
      () => new EvalThreads(peft, { workers: 0 }),
      (e: unknown) => e instanceof UserError && e.message === 'eval: workers: expected a positive integer or "auto", got 0',
    );
  });

  test("a replica whose SIMD kernels would differ from this thread's refuses to start", async () => {
    const before = process.env.LORALAB_SIMD;
    process.env.LORALAB_SIMD = "off"; // read by the worker's new backend; this thread's kernels are already on
    try {
      await assert.rejects(
        withEvalThreads(peft, { workers: 2 }, (t) => perplexityOn(t, rows(4), { batchSize: 2 })),
        (e: unknown) => e instanceof UserError && /SIMD kernels are on in one thread and off in another \(LORALAB_SIMD\)/.test(e.message),
      );
    } finally {
      if (before === undefined) delete process.env.LORALAB_SIMD;
      else process.env.LORALAB_SIMD = before;
    }
  });

  test("autoEvalWorkers: the cores for a long evaluation, one thread for short ones, one core, or another backend", () => {
    // `small` (30 M parameters, 8 layers): 8 batches of 4 × 256 windows, one thread with OpenBLAS ≈ 9 s.
    const shape: EvalShape = {
      cores: 2,
      backend: "wasm",
      parts: 8,
      parameters: 30e6,
      notReplicable: undefined,
      memoryBytes: 16e9,
      nativeBlas: true,
      tokens: 8192,
      passes: 8,
      layers: 8,
    };
    assert.deepEqual(autoEvalWorkers(shape), { workers: 2, why: "2 cores" });
    assert.deepEqual(autoEvalWorkers({ ...shape, tokens: 1024, passes: 1, parts: 1 }), { workers: 1, why: "one batch or generation" });
    assert.deepEqual(autoEvalWorkers({ ...shape, tokens: 2048, passes: 2, parts: 2 }), {
      workers: 1,
      why: "an evaluation too short to share",
    });
    // Generation is dominated by reading the weights once per token: 8 prompts of 32 new tokens ≈ 5 s.
    assert.equal(autoEvalWorkers({ ...shape, tokens: 320, passes: 264 }).workers, 2);
    assert.deepEqual(autoEvalWorkers({ ...shape, cores: 1 }), { workers: 1, why: "one core" });
    assert.deepEqual(autoEvalWorkers({ ...shape, backend: "tensorflow" }), {
      workers: 1,
      why: "the tensorflow backend uses the cores itself",
    });
  });

  test("the DSL's .eval(data, metrics, { workers }) gives the same result on 2 threads, for a base model and an adapter", async () => {
    const base = await dslModel("tiny-moby");
    const data = rows(8).map((e) => ({ input_ids: e.inputIds }));
    const one = await base.eval(data, ["perplexity"], { workers: 1 });
    const two = await base.eval(data, ["perplexity"], { workers: 2 });
    assert.deepEqual({ ...two }, { ...one });
    const run = await base
      .lora({ r: 2, targets: ["q_proj"] })
      .train(data, { maxSteps: 2, batchSize: 2, lr: 0.05, runsDir: false, workers: 1 });
    const adapterOne = await run.model.eval(data, ["perplexity"], { workers: 1 });
    const adapterTwo = await run.model.eval(data, ["perplexity"], { workers: 2 });
    assert.deepEqual({ ...adapterTwo }, { ...adapterOne });
    assert.notEqual(adapterOne.loss, one.loss, "the adapter's view is evaluated, not the base model's");
    assert.deepEqual(
      { ...(await base.eval(data, ["perplexity"], { workers: 2 })) },
      { ...one },
      "the base view again, after the adapter's",
    );
    // Both at once: each view's weights are set only around its own computations, so neither sees the other's.
    const [baseBoth, adapterBoth] = await Promise.all([
      base.eval(data, ["perplexity"], { workers: 2 }),
      run.model.eval(data, ["perplexity"], { workers: 2 }),
    ]);
    assert.deepEqual({ ...baseBoth }, { ...one });
    assert.deepEqual({ ...adapterBoth }, { ...adapterOne });
  });
});

describe("loralab eval --workers", () => {
  test("--workers 2 prints what --workers 1 does, and says how many threads ran", (t) => {
    const dir = testDir(t, "eval-workers");
    const lines = rows(12).map((e) => JSON.stringify({ input_ids: e.inputIds }));
    const file = writeFile(dir, "rows.jsonl", lines.join("\n") + "\n");
    const run = (workers: string) => {
      const out = runCli(["eval", "--model", "tiny-moby", "--data", file, "--batch", "2", "--workers", workers, "--json"]);
      assert.equal(out.status, 0, out.stderr);
      return JSON.parse(out.stdout) as { loss: number; perplexity: number; tokens: number; workers: number };
    };
    const one = run("1");
    const two = run("2");
    assert.equal(one.workers, 1);
    assert.equal(two.workers, 2);
    assert.deepEqual({ ...two, workers: 1 }, one);
    expectCliError(["eval", "--model", "tiny-moby", "--data", file, "--workers", "0"], ["--workers", "a positive integer or auto", "0"]);
  });
});
