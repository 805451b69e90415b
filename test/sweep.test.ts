/**
 * The DSL's sweeps on tiny-moby: the declarative form (seeds, statistics checked against numpy, the chart with
 * error bars, registry reuse by digest, local worker processes, trials refused at submission) and the closure
 * form's cache (keyed by what can be seen, said out loud when reused, `fresh: true`).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { dataset, model, sweep, type Model, type SweepResult, type TrialRecord } from "../dsl/index.js";
import { tempDir } from "./helpers/paths.js";

const rows = Array.from({ length: 8 }, (_, i) => ({ text: `Call me Ishmael, number ${i}. The whale was white.` }));
const heldOut = [{ text: "Some years ago, never mind how long precisely." }];
const root = tempDir("sweep");
let base: Model;
let first: SweepResult;
const runsDir = path.join(root, "runs");
const study = () => ({
  model: base,
  data: rows,
  train: { maxSteps: 3, batchSize: 4, lr: 1e-2 },
  eval: { data: heldOut },
  seeds: [1, 2, 3],
  runsDir,
  name: "ranks",
  liveEvery: 0,
});

before(async () => {
  base = await model("tiny-moby");
  first = await sweep({ r: [1, 4], alpha: ({ r }) => 2 * r }, study());
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

test("a declarative sweep runs every configuration once per seed and keeps the per-seed rows", () => {
  const table = first.table().objects() as { r: number; alpha: number; seed: number; status: string; perplexity: number }[];
  assert.deepEqual(
    table.map((t) => [t.r, t.alpha, t.seed]),
    [
      [1, 2, 1],
      [1, 2, 2],
      [1, 2, 3],
      [4, 8, 1],
      [4, 8, 2],
      [4, 8, 3],
    ],
  );
  assert.ok(table.every((t) => t.status === "completed" && t.perplexity > 1));
  assert.notEqual(table[0]!.perplexity, table[1]!.perplexity, "seeds give different trainings");
});

test("summary: mean, sample sd and n per configuration agree with numpy; best is the best mean", () => {
  const values = first.trials.map((t) => [t.config.r, t.finalLoss, t.metrics.perplexity]);
  const numpy = spawnSync(
    "/usr/bin/python3",
    [
      "-c",
      `import json, sys, numpy as np
rows = json.loads(sys.argv[1])
out = {}
for r in sorted({row[0] for row in rows}):
    loss = np.array([row[1] for row in rows if row[0] == r]); ppl = np.array([row[2] for row in rows if row[0] == r])
    out[str(r)] = [len(loss), loss.mean(), loss.std(ddof=1), ppl.mean(), ppl.std(ddof=1)]
print(json.dumps(out))`,
      JSON.stringify(values),
    ],
    { encoding: "utf8" },
  );
  assert.equal(numpy.status, 0, numpy.stderr);
  const expected = JSON.parse(numpy.stdout) as Record<string, number[]>;
  for (const s of first.summaries) {
    const [n, lossMean, lossSd, pplMean, pplSd] = expected[String(s.config.r)]!;
    assert.equal(s.n, n);
    for (const [got, want] of [
      [s.mean.finalLoss, lossMean],
      [s.sd.finalLoss, lossSd],
      [s.mean.perplexity, pplMean],
      [s.sd.perplexity, pplSd],
    ])
      assert.ok(Math.abs(got! - want!) <= 1e-12 * Math.max(1, Math.abs(want!)), `${got} vs numpy ${want}`);
  }
  const [row] = first.meanSd().objects() as Record<string, unknown>[];
  const { mean, sd } = first.summaries[0]!;
  assert.equal(row!.perplexity, `${Number(mean.perplexity!.toPrecision(4))} ± ${Number(sd.perplexity!.toPrecision(4))}`);
  assert.match(String(row!.perplexity), /^\d+\.\d{1,2} ± \d+(\.\d+)?$/);
  const means = first.summaries.map((s) => s.mean.perplexity!);
  assert.equal(first.best!.mean.perplexity, Math.min(...means));
  assert.deepEqual(first.summary().columnNames().slice(0, 5), ["r", "alpha", "n", "finalLoss_mean", "finalLoss_sd"]);
});

test("the metric chart draws the mean with a ± sd band and error bars, and every seed's value", () => {
  const spec = first.metricChart() as { layer: { mark: { type: string }; data: { values: Record<string, number>[] } }[] };
  assert.deepEqual(
    spec.layer.map((l) => l.mark.type),
    ["errorband", "errorbar", "line", "point"],
  );
  const means = spec.layer[2]!.data.values;
  assert.deepEqual(
    means.map((m) => [m.r, m.mean, m.low, m.high]),
    first.summaries.map((s) => [
      s.config.r,
      s.mean.perplexity,
      s.mean.perplexity! - s.sd.perplexity!,
      s.mean.perplexity! + s.sd.perplexity!,
    ]),
  );
  assert.equal(spec.layer[3]!.data.values.length, 6);
});

test("the trials are in the run registry; the same sweep again trains nothing", async () => {
  const ids = fs.readdirSync(runsDir).filter((d) => d.startsWith("trial-"));
  assert.equal(ids.length, 6);
  const again = await sweep({ r: [1, 4], alpha: ({ r }) => 2 * r }, study());
  assert.deepEqual(again.trials, first.trials, "the recorded trials, wall times included: nothing ran again");
});

test("the same sweep with workers: 1 or 2 is the same trials (threads say how, not what): nothing trains again", async () => {
  for (const workers of [1, 2]) {
    const again = await sweep({ r: [1, 4], alpha: ({ r }) => 2 * r }, { ...study(), train: { ...study().train, workers } });
    assert.deepEqual(again.trials, first.trials, `workers: ${workers}`);
  }
});

test("parallel: 2 local worker processes give the same numbers as this process", async () => {
  const parallel = await sweep(
    { r: [1, 4], alpha: ({ r }) => 2 * r },
    { ...study(), seeds: [1, 2], runsDir: path.join(root, "parallel"), parallel: 2 },
  );
  const numbers = (trials: TrialRecord[]) => trials.map((t) => [t.config, t.seed, t.finalLoss, t.metrics, t.history.map((h) => h.loss)]);
  assert.deepEqual(numbers(parallel.trials), numbers(first.trials.filter((t) => t.seed !== 3)));
});

test("a trial that cannot be sent to another process is refused at submission, naming the field", async () => {
  const refused = async (change: object, message: RegExp) => {
    const dir = path.join(root, "refused");
    await assert.rejects(sweep({ r: [2] }, { ...study(), runsDir: dir, ...change }), message);
    assert.ok(!fs.existsSync(dir) || fs.readdirSync(dir).length === 0, "nothing ran");
  };
  await refused(
    { train: { maxSteps: 2, onStep: () => {} } },
    /^UserError: trial r=2: train\.onStep is a function \(a closure cannot be sent to another process\)$/,
  );
  await refused({ lora: { targets: [() => "q_proj"] } }, /^UserError: trial r=2: lora\.targets\[0\] is a function/);
  await refused({ train: { lr: 5 } }, /trial r=2: train options: lr: expected a number in \(0, 1\], got 5/);
  await refused(
    { eval: { data: heldOut, metrics: ["accuracy"] } },
    /trial r=2: eval\.metrics: expected metrics among perplexity, bleu, chrf, exact_match, got "accuracy"/,
  );
  await assert.rejects(sweep({ rank: [2] }, { ...study() }), /sweep: space key "rank" is neither a LoRA option/);
  await assert.rejects(sweep({ r: [2] }, { ...study(), parallel: 2, queue: "redis://127.0.0.1:1/0" }), /give queue or parallel, not both/);
});

test("a trial's data travels as its recipe (a corpus, a split) when every step can be replayed", async () => {
  const words = dataset("cmudict", { limit: 40 }).split({ train: 0.75, test: 0.25 }, 7);
  const dir = path.join(root, "recipe");
  await sweep({ r: [2] }, { ...study(), data: words.train, eval: { data: words.test }, seeds: [5], runsDir: dir });
  const [id] = fs.readdirSync(dir).filter((d) => d.startsWith("trial-"));
  const recorded = JSON.parse(fs.readFileSync(path.join(dir, id!, "data.json"), "utf8"));
  assert.deepEqual(recorded.train.recipe, {
    load: "cmudict",
    options: { limit: 40 },
    steps: [{ split: { fractions: { train: 0.75, test: 0.25 }, seed: 7, part: "train" } }],
  });
  assert.equal(recorded.train.rows, 30);
  assert.equal(recorded.eval.fingerprint, words.test.fingerprint());
});

test("the closure form reuses finished trials out loud, retrains when its data or closure changes, and with fresh: true", async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const trained: number[] = [];
  const dir = path.join(root, "closure");
  const run = (data: typeof rows, extra = {}) =>
    sweep(
      { r: [1, 2] },
      (cfg) => {
        trained.push(cfg.r);
        return base.lora(cfg).train(data, { maxSteps: 1, batchSize: 4, runsDir: false, liveEvery: 0 });
      },
      { data, runsDir: dir, name: "closure", ...extra },
    );
  await run(rows);
  assert.deepEqual(trained, [1, 2]);
  await run(rows);
  assert.deepEqual(trained, [1, 2], "same grid, data and closure: reused");
  assert.deepEqual(warn.mock.calls.at(-1)!.arguments, [
    "reusing 2 finished trials of sweep closure (the closure's effect cannot be checked; fresh: true trains them again)",
  ]);
  await run(rows.slice(1));
  assert.deepEqual(trained, [1, 2, 1, 2], "other data: trained again");
  await run(rows, { fresh: true });
  assert.deepEqual(trained, [1, 2, 1, 2, 1, 2]);
});
