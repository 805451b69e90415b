/** The DSL end to end, as a user types it (on the real stories260K checkpoint). */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  corpusBleu,
  DISPLAY,
  compare,
  expandSpace,
  loadRun,
  METHOD_DEFAULTS,
  model,
  lastRun,
  runs,
  sweep,
  tabulate,
  TrainingInterrupted,
  UserError,
  type Model,
} from "../dsl/index.js";
import { spawn } from "node:child_process";
import { inspect } from "node:util";
import { pathToFileURL } from "node:url";
import { REPO, STORIES, tempDir } from "./helpers/paths.js";
import { tf } from "../src/backend/index.js";

const rows = [
  "The cat sat on the mat and purred.",
  "Tom played with a red ball in the park.",
  "Lily ate a sweet apple under the tree.",
  "The dog ran fast to find his bone.",
  "A bird sang a happy song in the morning.",
  "Mom baked a cake for the party.",
].map((text) => ({ text }));

let base: Model;
const runsDir = tempDir("runs");

before(async () => {
  base = await model(STORIES);
});

after(() => fs.rmSync(runsDir, { recursive: true, force: true }));

describe("DSL", () => {
  test("base.lora(...).train(ds) chains without an intermediate await, learns, and leaves the base model untouched", async () => {
    const before = await base.eval(rows);
    const run = await base
      .lora({ r: 4, alpha: 8, targets: ["q_proj", "v_proj"] })
      .train(rows, { maxSteps: 8, batchSize: 3, lr: 0.01, runsDir });
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

  test("the run registry holds config.json, metrics.jsonl (every step), the PEFT adapter and summary.json; save/loadAdapter round trip", async (t) => {
    const run = await base.lora({ r: 2 }).train(rows, { maxSteps: 4, batchSize: 2, runsDir, name: "registry" });
    const dir = run.dir!;
    assert.ok(dir.startsWith(runsDir) && path.basename(dir).includes("registry"));
    const metrics = fs
      .readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      metrics.map((m) => m.step),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      metrics.map((m) => m.loss),
      run.history.map((h) => h.loss),
    );
    const summary = JSON.parse(fs.readFileSync(path.join(dir, "summary.json"), "utf8"));
    assert.equal(summary.status, "completed");
    assert.equal(summary.final_loss, run.finalLoss);
    assert.ok(fs.existsSync(path.join(dir, "adapter", "adapter_config.json")));
    const savedDir = tempDir("save");
    t.after(() => fs.rmSync(savedDir, { recursive: true, force: true }));
    const saved = path.join(savedDir, "lora_finetuned");
    await run.model.save(saved);
    const again = await base.loadAdapter(saved);
    assert.equal((await again.eval(rows)).perplexity, (await run.model.eval(rows)).perplexity);
  });

  test("an aborted training throws TrainingInterrupted carrying the run, which resumes to the end", async () => {
    const controller = new AbortController();
    let caught: unknown;
    try {
      await base.lora({ r: 2 }).train(rows, {
        maxSteps: 6,
        batchSize: 2,
        runsDir: false,
        signal: controller.signal,
        onStep: (log) => {
          if (log.step === 2) controller.abort();
        },
      });
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
    assert.deepEqual(
      run.history.map((h) => h.step),
      [1, 2, 3, 4, 5, 6],
    );
  });

  test("runs display richly: text, HTML and a vega-lite loss chart as a JSON object", async () => {
    const run = await base.lora(2).train(rows, { maxSteps: 3, batchSize: 2, runsDir: false });
    const bundle = run[Symbol.for("Jupyter.display") as unknown as keyof typeof run] as unknown as () => Record<string, unknown>;
    const mime = bundle.call(run);
    assert.match(String(mime["text/plain"]), /final loss/);
    assert.match(String(mime["text/html"]), /<table>/);
    const spec = mime["application/vnd.vegalite.v5+json"] as { data: { values: { step: number }[] }; mark: unknown };
    assert.equal(typeof spec, "object");
    assert.deepEqual(
      spec.data.values.map((v) => v.step),
      [1, 2, 3],
    );
    assert.equal(run.table().numRows(), 3);
  });

  test("sweep: a grid with derived keys; an interrupted sweep re-run trains only the missing trials", async () => {
    assert.deepEqual(expandSpace({ r: [1, 2], alpha: ({ r }) => 2 * (r as number), dropout: [0, 0.1] }), [
      { r: 1, dropout: 0, alpha: 2 },
      { r: 1, dropout: 0.1, alpha: 2 },
      { r: 2, dropout: 0, alpha: 4 },
      { r: 2, dropout: 0.1, alpha: 4 },
    ]);
    const space = { r: [1, 2, 4], alpha: ({ r }: Record<string, unknown>) => 2 * (r as number) };
    const trained: number[] = [];
    const train = (cfg: Record<string, unknown>) => {
      trained.push(cfg.r as number);
      if (cfg.r === 4 && trained.length === 3) throw new Error("simulated interrupt");
      return base.lora(cfg).train(rows, { maxSteps: 2, batchSize: 3, lr: 0.01, runsDir: false });
    };
    const options = { eval: { data: rows }, runsDir, name: "rank" };
    await assert.rejects(sweep(space, train, options), /simulated interrupt/);
    assert.deepEqual(trained, [1, 2, 4]);
    const result = await sweep(space, train, options);
    assert.deepEqual(trained, [1, 2, 4, 4], "only the missing trial trains again");
    const table = result.table().objects() as Record<string, number>[];
    assert.deepEqual(
      table.map((t) => t.r),
      [1, 2, 4],
    );
    assert.deepEqual(
      table.map((t) => t.alpha),
      [2, 4, 8],
    );
    assert.ok(table.every((t) => t.perplexity! > 1 && t.trainable_params > 0));
    assert.ok(table[0]!.trainable_params < table[2]!.trainable_params);
    assert.equal(result.best!.mean.perplexity, Math.min(...table.map((t) => t.perplexity!)));
    const curves = result.lossCurves() as { data: { values: unknown[] } };
    assert.equal(curves.data.values.length, 6, "2 steps × 3 trials");
  });

  test("compare: full vs LoRA, measured", async () => {
    const c = await compare({ full: base.full(), lora: base.lora(4) }, rows, {
      maxSteps: 2,
      batchSize: 3,
      lr: 1e-3,
      runsDir: false,
      eval: { data: rows },
    });
    const t = c.table().objects() as Record<string, number | string>[];
    assert.deepEqual(
      t.map((r) => r.method),
      ["full", "lora"],
    );
    assert.ok((t[0]!.trainable_params as number) > 50 * (t[1]!.trainable_params as number));
    assert.ok(Math.abs((t[0]!.trainable_pct as number) - 100) < 1e-9);
    assert.ok(t.every((r) => (r.median_step_ms as number) > 0 && (r.peak_MiB as number) > 0 && (r.perplexity as number) > 1));
    const rounded = c.table({ digits: 3 }).objects() as Record<string, number | string>[];
    assert.equal(rounded[1]!.perplexity, Number((t[1]!.perplexity as number).toPrecision(3)));
    assert.equal(rounded[1]!.trainable_params, t[1]!.trainable_params, "integers stay whole");
  });

  test("tabulate: rows as a table, non-integer numbers at the given significant digits", () => {
    const rows = [{ name: "a", n: 12345, x: 3.14159265, y: 0.000123456 }];
    assert.deepEqual(tabulate(rows, { digits: 3 }).objects(), [{ name: "a", n: 12345, x: 3.14, y: 0.000123 }]);
    assert.deepEqual(tabulate(rows).objects(), rows);
    assert.match(tabulate(rows, { digits: 4 }).toMarkdown(), /\|a\|12345\|3\.142\|0\.000123\|/);
  });

  test("compare: each method trains with its own options, over the shared ones, and the table says which", async () => {
    const c = await compare(
      { full: [base.full(), { lr: 1e-4 }], lora: base.lora(4), tuned: [base.lora(4), { lr: 5e-3, batchSize: 2 }] },
      rows,
      {
        maxSteps: 2,
        batchSize: 3,
        runsDir: false,
      },
    );
    assert.equal(c.runs.full!.trainingOptions.lr, 1e-4);
    assert.equal(c.runs.lora!.trainingOptions.lr, METHOD_DEFAULTS.lora!.lr, "a method without a learning rate gets its kind's default");
    assert.deepEqual([c.runs.tuned!.trainingOptions.lr, c.runs.tuned!.trainingOptions.batchSize], [5e-3, 2]);
    assert.equal(c.runs.full!.trainingOptions.batchSize, 3, "shared options reach every method");
    const options = (c.table().objects() as { method: string; options: string }[]).map((r) => [r.method, r.options]);
    assert.deepEqual(options, [
      ["full", "lr=0.0001, batchSize=3, gradAccum=1, maxSteps=2"],
      ["lora", `lr=${METHOD_DEFAULTS.lora!.lr}, batchSize=3, gradAccum=1, maxSteps=2`],
      ["tuned", "lr=0.005, batchSize=2, gradAccum=1, maxSteps=2"],
    ]);
  });

  test("compare: a method that is not a builder is a user error naming it", async () => {
    await assert.rejects(
      compare({ full: base.full(), oops: [{ r: 8 } as never, {}] }, rows, { maxSteps: 1, runsDir: false }),
      (e: Error) => e instanceof UserError && /compare: oops: expected base.lora/.test(e.message),
    );
  });

  test("runs() lists recorded runs; loadRun reads one back", () => {
    const table = runs(runsDir).objects() as { id: string; status: string }[];
    assert.ok(table.length >= 2);
    const recorded = loadRun(table.find((r) => r.id.includes("registry"))!.id, runsDir);
    assert.deepEqual(
      recorded.metrics.map((m) => m.step),
      [1, 2, 3, 4],
    );
    assert.ok(recorded.adapterDir);
    assert.throws(() => loadRun("nope", runsDir), /no recorded run/);
  });

  test("two processes recording runs into one registry at once keep both intact", async (t) => {
    const shared = tempDir("runs-concurrent");
    t.after(() => fs.rmSync(shared, { recursive: true, force: true }));
    const dsl = pathToFileURL(path.join(REPO, "dist/dsl/index.js")).href;
    const script = `const { model } = await import(${JSON.stringify(dsl)});
      const base = await model("tiny-moby");
      const rows = Array.from({ length: 8 }, (_, i) => ({ text: "Call me Ishmael, number " + i + "." }));
      await base.lora({ r: 2 }).train(rows, { maxSteps: 8, batchSize: 2, runsDir: ${JSON.stringify(shared)}, name: "same-name", liveEvery: 0 });`;
    const spawnRun = () =>
      new Promise<number>((resolve) => {
        spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: "ignore" }).on("exit", (code) => resolve(code ?? -1));
      });
    assert.deepEqual(await Promise.all([spawnRun(), spawnRun()]), [0, 0]);
    const listed = runs(shared).objects() as { id: string; status: string; steps: number }[];
    assert.equal(listed.length, 2, "two runs, distinct ids although started together with one name");
    for (const r of listed) {
      assert.equal(r.status, "completed");
      const recorded = loadRun(r.id, shared);
      assert.deepEqual(
        recorded.metrics.map((m) => m.step),
        [1, 2, 3, 4, 5, 6, 7, 8],
        "every step recorded once, lines not interleaved",
      );
      assert.ok(fs.existsSync(path.join(recorded.adapterDir!, "adapter_model.safetensors")));
    }
  });

  test("generation metrics score greedy continuations of prompts against completions, with a per-example table", async () => {
    const pairs = [
      { prompt: "The cat sat", completion: " on the mat and purred." },
      { prompt: "Tom played", completion: " with a red ball in the park." },
    ];
    const result = await base.eval(pairs, ["perplexity", "bleu", "chrf", "exact_match"]);
    const table = result.examples!.objects() as { prompt: string; completion: string; generated: string }[];
    assert.deepEqual(
      table.map((r) => r.prompt),
      pairs.map((p) => p.prompt),
    );
    for (const r of table) {
      const greedy = await base.generate(r.prompt, { maxNewTokens: 1 });
      assert.ok(r.generated.startsWith(greedy.text.trim()), `${r.generated} should continue greedily (${greedy.text})`);
    }
    const hyps = table.map((r) => r.generated);
    assert.equal(result.bleu, corpusBleu(hyps, [pairs.map((p) => p.completion.trim())]).score);
    assert.ok(result.chrf! >= 0 && result.chrf! <= 100);
    assert.equal(result.exact_match, hyps.filter((h, i) => h === pairs[i]!.completion.trim()).length / 2);
    assert.ok(result.perplexity! > 1);
  });

  test("an eval result reads well when printed inside an object: its numbers and the examples' size, no table internals", async () => {
    const pairs = [{ prompt: "The cat sat", completion: " on the mat." }];
    const result = await base.eval(pairs, ["perplexity", "bleu"]);
    const printed = inspect({ before: result });
    assert.match(
      printed,
      /^\{\s+before: EvalResult \{ perplexity: [\d.]+, loss: [\d.]+, tokens: \d+, bleu: [\d.]+, examples: 1 rows \(\.examples\) \}\s+\}$/,
    );
    assert.deepEqual(Object.keys({ ...result }), ["perplexity", "loss", "tokens", "bleu"], "spreading keeps the numbers only");
    assert.equal(JSON.parse(JSON.stringify(result)).examples, undefined);
    assert.equal(result.examples!.numRows(), 1, "the table stays reachable");
    const bundle = result[DISPLAY]();
    assert.match(bundle["text/html"] as string, /<table>.*The cat sat/s);
  });

  /** A rejected train() call: a UserError with this message, and no adapter left on the base model. */
  async function refused(
    options: Parameters<ReturnType<Model["lora"]>["train"]>[1],
    message: string,
    data: Record<string, unknown>[] = rows,
  ) {
    const adapters = [...base.peftModel().adapters.keys()];
    await assert.rejects(base.lora(2).train(data, { runsDir: false, ...options }), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(e.message.startsWith(message), e.message);
      return true;
    });
    assert.deepEqual([...base.peftModel().adapters.keys()], adapters, "a refused run adds no adapter");
  }

  test("an absurd learning rate is refused before anything is created", async () => {
    await refused({ lr: 1e30 }, "train options: lr: expected a number in (0, 1], got 1e+30");
  });

  test("a misspelt option is refused, listing the known ones", async () => {
    await refused({ warmup: 4 } as never, 'train options: unknown option "warmup"; known: lr, batchSize,');
  });

  test("maxLength above the model's context is refused", async () => {
    await refused({ maxLength: 100000 }, "train options: maxLength: expected at most the model's context (512 tokens), got 100000");
  });

  test("rows that are all one token long: no tokens to train on", async () => {
    await refused({ maxSteps: 1 }, "training data: no tokens to train on: none of the 2 rows", [{ input_ids: [5] }, { input_ids: [9] }]);
  });

  test("rows longer than the context are cut to it, with a one-line notice", async (t) => {
    const warn = t.mock.method(console, "warn", () => {});
    const long = Array.from({ length: 600 }, (_, i) => 3 + (i % 500));
    const run = await base.lora(2).train([{ input_ids: long }, ...rows.slice(0, 2)], { maxSteps: 1, batchSize: 3, runsDir: false });
    assert.equal(run.status, "completed");
    assert.deepEqual(
      warn.mock.calls.map((c) => c.arguments),
      [["LoRA r=2: 1 of 3 rows were longer than 512 tokens and were cut to 512"]],
    );
  });

  test("a run whose loss becomes NaN throws 'training diverged' and records the run as diverged", async () => {
    const fresh = await model("tiny-moby");
    let caught: unknown;
    try {
      await fresh.full().train(rows, {
        maxSteps: 4,
        batchSize: 2,
        runsDir: false,
        onStep: (log, run) => {
          // Poison one weight after the first step: the second step's loss is NaN.
          const [, w] = [...run.model.namedParameters()].find(([n]) => n.endsWith("down_proj.weight"))!;
          if (log.step === 1) tf.tidy(() => w.assign(w.mul(NaN)));
        },
      });
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof UserError, String(caught));
    assert.equal(caught.message, "training diverged: step 2: loss is NaN; the update was not applied");
    assert.equal(lastRun()!.status, "diverged");
    assert.equal(lastRun()!.step, 1);
  });

  test("a run reports PEFT's trainable-parameter summary of its own model", async () => {
    const run = await base.lora(4).train(rows, { maxSteps: 1, batchSize: 2, runsDir: false });
    const own = [...run.model.namedParameters()];
    const adapterSize = own.filter(([n]) => n.includes(".lora_")).reduce((s, [, p]) => s + p.size, 0);
    assert.equal(run.parameters.trainable, adapterSize);
    assert.equal(run.parameters.all, base.parameters + adapterSize, "the base's parameters and this adapter's, no other adapter's");
    assert.equal(
      run.parameters.text,
      `trainable params: ${adapterSize.toLocaleString("en-US")} || all params: ${(base.parameters + adapterSize).toLocaleString("en-US")} || trainable%: ${((100 * adapterSize) / (base.parameters + adapterSize)).toFixed(4)}`,
    );
  });
});
