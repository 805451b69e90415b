/**
 * The run registry after a kill: a real process training a recorded run is SIGKILLed mid-run; runs() and loadRun()
 * show it interrupted at the step its metrics.jsonl really reached, what the dead process left half-written is
 * cleaned, and loadRun(id).resume() finishes it from its last checkpoint with the losses of an uninterrupted run.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { loadRun, model, runs, REGISTRY_SAVE_STEPS, type Model } from "../dsl/index.js";
import { REPO, tempDir } from "./helpers/paths.js";

const rows = Array.from({ length: 6 }, (_, i) => ({ text: `Call me Ishmael, number ${i}. The whale was white.` }));
const options = { maxSteps: 3 * REGISTRY_SAVE_STEPS, batchSize: 2, lr: 1e-2, liveEvery: 0 };
const root = tempDir("registry");
let base: Model;

before(async () => {
  base = await model("tiny-moby");
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** Trains a recorded run in another process and SIGKILLs it once it has logged `killAfter` steps; returns its pid. */
function trainAndKill(runsDir: string, killAfter: number): Promise<number> {
  const dsl = pathToFileURL(path.join(REPO, "dist/dsl/index.js")).href;
  const script = `const { model } = await import(${JSON.stringify(dsl)});
    const base = await model("tiny-moby");
    await base.lora({ r: 2 }).train(${JSON.stringify(rows)}, { ...${JSON.stringify(options)}, runsDir: ${JSON.stringify(runsDir)}, name: "killed",
      onStep: (log) => console.log("step " + log.step) });`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes(`step ${killAfter}\n`)) child.kill("SIGKILL");
    });
    child.on("exit", (code, signal) =>
      signal === "SIGKILL" ? resolve(child.pid!) : reject(new Error(`exited with ${code} before the kill:\n${out}`)),
    );
  });
}

test(
  "a SIGKILLed run shows as interrupted at its real step, and resume() finishes it with an uninterrupted run's losses",
  { timeout: 600_000 },
  async () => {
    const reference = await base.lora({ r: 2 }).train(rows, { ...options, runsDir: false });
    const runsDir = path.join(root, "runs");
    const killedAt = REGISTRY_SAVE_STEPS + 4;
    const pid = await trainAndKill(runsDir, killedAt);

    const [listed] = runs(runsDir).objects() as { id: string; status: string; steps: number }[];
    assert.equal(listed!.status, "interrupted");
    const recorded = loadRun(listed!.id, runsDir);
    const logged = recorded.metrics.map((m) => m.step);
    assert.ok(logged.length >= killedAt && logged.length < options.maxSteps, `steps logged: ${logged}`);
    assert.deepEqual(
      logged,
      Array.from({ length: logged.length }, (_, i) => i + 1),
    );
    assert.equal(listed!.steps, logged.at(-1), "runs() shows the last logged step");
    assert.equal(recorded.summary.steps, logged.at(-1));
    assert.equal(recorded.checkpoint?.step, REGISTRY_SAVE_STEPS, "the newest checkpoint before the kill");
    assert.deepEqual(
      recorded.metrics.map((m) => m.loss),
      reference.history.slice(0, logged.length).map((h) => h.loss),
    );

    // What the dead process could have left half-written is cleaned when the run is read.
    const leftovers = [
      path.join(recorded.dir, "checkpoints", `checkpoint-20.tmp-${pid}`),
      path.join(recorded.dir, `.adapter.loralab-new-${pid}-00c0ffee`),
    ];
    for (const dir of leftovers) fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(recorded.dir, `.summary.json.tmp-${pid}-0badf00d`), "{");
    const again = loadRun(listed!.id, runsDir);
    for (const file of [...leftovers, path.join(recorded.dir, `.summary.json.tmp-${pid}-0badf00d`)])
      assert.ok(!fs.existsSync(file), `${file} removed`);

    const resumed = await again.resume({ base });
    assert.equal(resumed.status, "completed");
    assert.equal(resumed.id, listed!.id, "the run continues in its own folder");
    assert.deepEqual(
      resumed.history.map((h) => h.loss),
      reference.history.map((h) => h.loss),
    );
    const done = loadRun(listed!.id, runsDir);
    assert.equal(done.status, "completed");
    assert.deepEqual(
      done.metrics.map((m) => m.step),
      reference.history.map((h) => h.step),
      "every step logged once",
    );
    assert.equal(done.checkpoint, undefined, "a completed run keeps no default checkpoint");
    assert.ok(done.adapterDir);
    await assert.rejects(done.resume({ base }), /its status is completed; only an interrupted or cancelled run resumes/);
  },
);

test("a recorded run of rows whose process is alive is running, not interrupted", async () => {
  const runsDir = path.join(root, "alive");
  const run = await base.lora({ r: 2 }).train(rows, { maxSteps: 2, batchSize: 2, runsDir, liveEvery: 0 });
  const folder = run.dir!;
  const summary = JSON.parse(fs.readFileSync(path.join(folder, "summary.json"), "utf8"));
  // As summary.json reads while this process trains: running, owned by this process.
  fs.writeFileSync(path.join(folder, "summary.json"), JSON.stringify({ ...summary, status: "running" }));
  assert.equal(loadRun(run.id, runsDir).status, "running");
  fs.writeFileSync(
    path.join(folder, "summary.json"),
    JSON.stringify({ ...summary, status: "running", owner: { ...summary.owner, pid: 2 ** 22 + 1 } }),
  );
  assert.equal(loadRun(run.id, runsDir).status, "interrupted");
});

test("an adapter whose save was killed between its two renames still loads: the complete copy is moved into place", async () => {
  const run = await base.lora({ r: 2 }).train(rows, { maxSteps: 2, batchSize: 2, runsDir: false, liveEvery: 0 });
  const dir = path.join(root, "saved", "adapter");
  await run.model.save(dir);
  // What a writer with pid DEAD leaves when killed after moving the old directory aside, before moving the new one in.
  const dead = 2 ** 22 + 1;
  fs.renameSync(dir, path.join(root, "saved", `.adapter.loralab-ready-${dead}-0000beef`));
  const loaded = await base.loadAdapter(dir);
  assert.equal((await loaded.eval(rows)).perplexity, (await run.model.eval(rows)).perplexity);
  assert.deepEqual(fs.readdirSync(path.join(root, "saved")), ["adapter"]);
});
