/**
 * An adapter's initial weights and dropout masks come from its own seed (in the DSL: the run's seed,
 * default 42), so a cell gives the same losses wherever it runs: on a fresh model, after other adapters
 * were created on the same base, or in another process. Build first: the other process runs dist/.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { initBackend } from "../src/backend/index.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { model, type Model, type TrainOptions } from "../dsl/index.js";
import { REPO, tempDir } from "./helpers/paths.js";
import { writeTinyCheckpoint } from "./helpers/tiny-models.js";
import { tinyData, tinyModel } from "./helpers/tiny-train.js";

const work = tempDir("lora-seeds");
after(() => fs.rmSync(work, { recursive: true, force: true }));

const rows = tinyData(8);
const LORA = { r: 4, dropout: 0.1, targets: ["q_proj", "v_proj", "up_proj"] };
const TRAIN: TrainOptions = { maxSteps: 4, batchSize: 2, lr: 0.01, runsDir: false, liveEvery: 0 };

/** The cell under test: a LoRA training; its losses. */
async function cell(base: Model, options: TrainOptions = {}): Promise<number[]> {
  const run = await base.lora(LORA).train(rows, { ...TRAIN, ...options });
  return run.history.map((s) => s.loss);
}

let tinyDir: string;
let reference: number[];

before(async () => {
  await initBackend();
  tinyDir = await writeTinyCheckpoint(path.join(work, "llama"), "llama", 11);
  const fresh = await model(tinyDir);
  reference = await cell(fresh);
  fresh.loaded.model.dispose();
});

/** A DSL model freed when the test ends. */
async function base(t: { after(fn: () => void): void }): Promise<Model> {
  const m = await model(tinyDir);
  t.after(() => m.loaded.model.dispose());
  return m;
}

describe("a LoRA cell's losses do not depend on the session before it", () => {
  test("after other adapters were created and trained on the same base model", async (t) => {
    const b = await base(t);
    await b.lora(2).train(rows, TRAIN);
    await b.lora({ r: 8, targets: ["k_proj", "up_proj"], dropout: 0.2 }).train(rows, { ...TRAIN, seed: 3 });
    assert.deepEqual(await cell(b), reference);
  });

  test("run twice on one base model", async (t) => {
    const b = await base(t);
    assert.deepEqual(await cell(b), reference);
    assert.deepEqual(await cell(b), reference);
  });

  test("after an adapter was loaded onto the base model", async (t) => {
    const b = await base(t);
    const first = await b.lora(2).train(rows, TRAIN);
    const dir = await first.model.save(path.join(work, "saved"));
    await b.loadAdapter(dir);
    assert.deepEqual(await cell(b), reference);
  });

  test("in a fresh process", () => {
    const dsl = pathToFileURL(path.join(REPO, "dist/dsl/index.js")).href;
    const script = `const { model } = await import(${JSON.stringify(dsl)});
      const base = await model(${JSON.stringify(tinyDir)});
      const run = await base.lora(${JSON.stringify(LORA)}).train(${JSON.stringify(rows)}, ${JSON.stringify(TRAIN)});
      console.log(JSON.stringify(run.history.map((s) => s.loss)));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, LORALAB_BACKEND: "" },
    });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout.trim().split("\n").at(-1)!), reference);
  });

  test("the default seed is the run's default, 42; another seed gives other losses", async (t) => {
    const b = await base(t);
    assert.deepEqual(await cell(b, { seed: 42 }), reference);
    assert.notDeepEqual(await cell(b, { seed: 7 }), reference);
  });
});

test("an adapter's initial A and B come from its seed, whatever adapters the model had before", async (t) => {
  const weights = (peft: PeftModel, name: string) =>
    [...peft.base.namedParameters()].filter(([n]) => n.includes(`.${name}.`)).map(([, p]) => Array.from(p.dataSync()));
  const config = { r: 2, targets: ["q_proj", "v_proj"], initLoraWeights: false };
  const a = await tinyModel("llama");
  const b = await tinyModel("llama");
  t.after(() => [a, b].forEach((m) => m.model.dispose()));
  const alone = PeftModel.emptyOn(a.model);
  alone.addAdapter("x", config, { seed: 5 });
  const crowded = PeftModel.emptyOn(b.model, 5);
  crowded.addAdapter("first", { ...config, r: 3 });
  crowded.addAdapter("second", { targets: ["k_proj"], initLoraWeights: false }, { seed: 9 });
  crowded.addAdapter("x", config); // the PeftModel's seed, 5
  assert.deepEqual(weights(crowded, "x"), weights(alone, "x"));
});
