/**
 * What a user prints reads well: console.log / util.inspect of the DSL's objects shows what their notebook
 * display shows (no trainer internals, no step-by-step history), also nested inside other objects; and an
 * uncaught error in a script is reported at its own line, not at a line of tfjs's minified WebAssembly glue.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { inspect } from "node:util";
import { REPO, tempDir } from "./helpers/paths.js";
import { loadRun, model, sweep, type Model, type Run } from "../dsl/index.js";

const rows = Array.from({ length: 6 }, (_, i) => ({ text: `Call me Ishmael, ${i}. Some years ago, never mind how long precisely.` }));
const runsDir = tempDir("printing-runs");
let base: Model;
let run: Run;

before(async () => {
  base = await model("tiny-moby");
  run = await base.lora({ r: 2 }).train(rows, { maxSteps: 12, batchSize: 2, runsDir, liveEvery: 0 });
});
after(() => fs.rmSync(runsDir, { recursive: true, force: true }));

/** Internals that must never reach a printed value. */
const INTERNALS = /trainer|noDecay|optimizer|randomState|\[Object\]|\[Array\]|history/;

test("a run prints as its display: id, status, steps, final loss, parameters; not the trainer", () => {
  const text = inspect(run);
  assert.match(text, /^Run\n/);
  assert.match(text, /status\s+completed/);
  assert.match(text, /steps\s+12\/12/);
  assert.match(text, /trainable params\s+[\d,]+ of [\d,]+/);
  assert.doesNotMatch(text, INTERNALS);
  assert.ok(text.split("\n").length < 20, text);
});

test("a recorded run printed inside an object shows its summary, not every logged step", () => {
  const text = inspect({ recorded: loadRun(run.id, runsDir) });
  assert.match(text, /Recorded run/);
  assert.match(text, /steps\s+12\/12/);
  assert.doesNotMatch(text, /metrics:|loss: \d/);
  assert.doesNotMatch(text, INTERNALS);
});

test("loadRun and runs with a wrong argument are user errors naming it", () => {
  assert.throws(() => loadRun(run.id, { runsDir } as unknown as string), /^UserError: loadRun\(\): dir: expected/);
  assert.throws(() => loadRun(42 as unknown as string, runsDir), /^UserError: loadRun\(\): id: expected/);
});

test("a sweep's best configuration prints as its mean ± sd, its trials stay readable", async () => {
  const result = await sweep(
    { r: [1, 4] },
    (cfg) => base.lora(cfg).train(rows, { maxSteps: 2, batchSize: 2, runsDir: false, liveEvery: 0 }),
    {
      runsDir,
      name: "printing",
    },
  );
  const best = result.best!;
  assert.match(inspect({ best }), /\{ best: r=\d \(n=1\): finalLoss \d+\.\d+ ± 0 \}/);
  assert.equal(best.trials.length, 1, "the trials are still there");
  assert.ok(best.trials[0]!.history.length > 0);
  assert.deepEqual(Object.keys({ ...best }).sort(), ["config", "mean", "n", "sd"]);
  assert.doesNotMatch(inspect(result), INTERNALS);
});

test("an uncaught error in a script after the tensor backend started is reported at the script's line", () => {
  const dir = tempDir("printing-script");
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, "boom.mts");
  const dsl = JSON.stringify(path.join(REPO, "dsl/index.ts"));
  fs.writeFileSync(script, `import { model } from ${dsl};\nawait model("tiny-moby");\nthrow new Error("boom from the script");\n`);
  const out = spawnSync(process.execPath, ["--import", "tsx", script], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
  assert.equal(out.status, 1, out.stderr);
  assert.match(out.stderr, /boom\.mts:3/);
  assert.match(out.stderr, /Error: boom from the script/);
  assert.doesNotMatch(out.stderr, /WasmBackendModule|var Module=/);
  assert.ok(out.stderr.length < 2000, `stderr is ${out.stderr.length} characters`);
});
