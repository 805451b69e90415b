/** The DSL end to end, as a user types it (on the real stories260K checkpoint). */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { model, lastRun, TrainingInterrupted, type Model } from "../dsl/index.js";
import { STORIES, tempDir } from "./helpers/paths.js";

const rows = [
  "The cat sat on the mat and purred.", "Tom played with a red ball in the park.", "Lily ate a sweet apple under the tree.",
  "The dog ran fast to find his bone.", "A bird sang a happy song in the morning.", "Mom baked a cake for the party.",
].map((text) => ({ text }));

let base: Model;
const runsDir = tempDir("runs");

before(async () => {
  base = await model(STORIES);
});

describe("DSL", () => {
  test("base.lora(...).train(ds) chains without an intermediate await, learns, and leaves the base model untouched", async () => {
    const before = await base.eval(rows);
    const run = await base.lora({ r: 4, alpha: 8, targets: ["q_proj", "v_proj"] }).train(rows, { maxSteps: 8, batchSize: 3, lr: 0.01, runsDir });
    assert.equal(run.status, "completed");
    assert.equal(run.history.length, 8);
    const after = await run.model.eval(rows, ["perplexity"]);
    assert.ok(after.perplexity! < before.perplexity!, `LoRA should fit the rows: ${after.perplexity} vs ${before.perplexity}`);
    assert.equal((await base.eval(rows)).perplexity, before.perplexity, "the base model is unchanged");
    const generated = await run.model.generate("Once upon a time", { maxNewTokens: 8 });
    assert.equal(generated.ids.length, 8);
    assert.equal(typeof generated.text, "string");
  });

  test("base.lora(8) is shorthand for { r: 8 }; base.full() trains a copy", async () => {
    const run = await base.lora(8).train(rows, { maxSteps: 1, batchSize: 2, runsDir: false });
    assert.equal((run.model as { config: { r: number } }).config.r, 8);
    const before = await base.eval(rows);
    const full = await base.full().train(rows, { maxSteps: 3, batchSize: 3, lr: 1e-3, runsDir: false });
    assert.ok((await full.model.eval(rows)).perplexity! < before.perplexity!);
    assert.equal((await base.eval(rows)).perplexity, before.perplexity);
    assert.ok(full.trainableParams > 200_000);
  });

  test("the run registry holds config.json, metrics.jsonl (every step), the PEFT adapter and summary.json; save/loadAdapter round trip", async () => {
    const run = await base.lora({ r: 2 }).train(rows, { maxSteps: 4, batchSize: 2, runsDir, name: "registry" });
    const dir = run.dir!;
    assert.ok(dir.startsWith(runsDir) && path.basename(dir).includes("registry"));
    const metrics = fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(metrics.map((m) => m.step), [1, 2, 3, 4]);
    assert.deepEqual(metrics.map((m) => m.loss), run.history.map((h) => h.loss));
    const summary = JSON.parse(fs.readFileSync(path.join(dir, "summary.json"), "utf8"));
    assert.equal(summary.status, "completed");
    assert.equal(summary.final_loss, run.finalLoss);
    assert.ok(fs.existsSync(path.join(dir, "adapter", "adapter_config.json")));
    const saved = path.join(tempDir("save"), "lora_finetuned");
    await run.model.save(saved);
    const again = await base.loadAdapter(saved);
    assert.equal((await again.eval(rows)).perplexity, (await run.model.eval(rows)).perplexity);
  });

  test("an aborted training throws TrainingInterrupted carrying the run, which resumes to the end", async () => {
    const controller = new AbortController();
    let caught: unknown;
    try {
      await base.lora({ r: 2 }).train(rows, { maxSteps: 6, batchSize: 2, runsDir: false, signal: controller.signal, onStep: (log) => { if (log.step === 2) controller.abort(); } });
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof TrainingInterrupted, String(caught));
    const run = (caught as TrainingInterrupted).run;
    assert.equal(run, lastRun());
    assert.equal(run.status, "cancelled");
    assert.equal(run.history.length, 2);
    await run.resume();
    assert.equal(run.status, "completed");
    assert.deepEqual(run.history.map((h) => h.step), [1, 2, 3, 4, 5, 6]);
  });

  test("runs display richly: text, HTML and a vega-lite loss chart as a JSON object", async () => {
    const run = await base.lora(2).train(rows, { maxSteps: 3, batchSize: 2, runsDir: false });
    const bundle = run[Symbol.for("Jupyter.display") as unknown as keyof typeof run] as unknown as () => Record<string, unknown>;
    const mime = bundle.call(run);
    assert.match(String(mime["text/plain"]), /final loss/);
    assert.match(String(mime["text/html"]), /<table>/);
    const spec = mime["application/vnd.vegalite.v5+json"] as { data: { values: { step: number }[] }; mark: unknown };
    assert.equal(typeof spec, "object");
    assert.deepEqual(spec.data.values.map((v) => v.step), [1, 2, 3]);
    assert.equal(run.table().numRows(), 3);
  });
});
