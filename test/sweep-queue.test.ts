/**
 * Studies across processes, for real: a redis-server started by the test, `loralab worker`s and `loralab sweep`
 * spawned through the CLI. The same declarative sweep gives the same numbers in this process, in local worker
 * processes and on queue workers; a worker killed with SIGKILL mid-trial loses nothing; a finished sweep
 * re-submitted runs nothing; a bad trial fails alone; passwords and TLS pass through and are never printed.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "./helpers/paths.js";
import { freePort, hasRedis, startRedis } from "./helpers/redis.js";
import { runCliAsync, startCli, startWorker } from "./helpers/workers.js";

const skip = hasRedis ? false : "needs Debian's redis-server (apt-get install redis-server; .ci/run installs it)";

interface SweepJson {
  trials: {
    config: Record<string, unknown>;
    seed: number;
    finalLoss: number | null;
    metrics: Record<string, number>;
    status: string;
    error?: string;
    digest: string;
  }[];
  summary: { config: Record<string, unknown>; n: number; mean: Record<string, number>; sd: Record<string, number> }[];
}

const dir = tempDir("sweep-queue");
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const data = path.join(dir, "data.jsonl");
fs.writeFileSync(
  data,
  Array.from({ length: 8 }, (_, i) => JSON.stringify({ text: `Call me Ishmael, number ${i}. The sea was deep.` })).join("\n"),
);

/** `loralab sweep` over r × seeds on tiny-moby, recording into `runs`. */
function sweepArgs(extra: string[], { steps = 3, grid = "r=1,2,4" } = {}): string[] {
  return [
    "sweep",
    "--model",
    "tiny-moby",
    "--data",
    data,
    "--eval",
    data,
    "--grid",
    grid,
    "--seeds",
    "1,2",
    "--steps",
    String(steps),
    "--batch",
    "4",
    "--json",
    ...extra,
  ];
}

/** A fresh run registry (LORALAB_RUNS_DIR) under the test's folder. */
function registry(): string {
  return fs.mkdtempSync(path.join(dir, "runs-"));
}

function parse(stdout: string): SweepJson {
  return JSON.parse(stdout) as SweepJson;
}

/** What must agree wherever a trial runs: config, seed, final loss, eval metrics. */
const numbers = (r: SweepJson) => r.trials.map((t) => ({ config: t.config, seed: t.seed, finalLoss: t.finalLoss, metrics: t.metrics }));

/** Every step's loss of every recorded trial, by digest. */
function recordedLosses(runs: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const id of fs.readdirSync(runs)) {
    const trial = JSON.parse(fs.readFileSync(path.join(runs, id, "trial.json"), "utf8")) as { digest: string };
    const lines = fs
      .readFileSync(path.join(runs, id, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n");
    out[trial.digest] = lines.map((l) => (JSON.parse(l) as { loss: number }).loss);
  }
  return out;
}

test(
  "the same 6-trial sweep gives the same records in this process, in 2 local worker processes and on 2 queue workers",
  { skip, timeout: 600_000 },
  async (t) => {
    const redis = await startRedis(t);
    const [inline, parallel, queued] = [registry(), registry(), registry()];
    const local = await runCliAsync(t, sweepArgs([]), { LORALAB_RUNS_DIR: inline });
    assert.equal(local.status, 0, local.stderr);
    const processes = await runCliAsync(t, sweepArgs(["--parallel", "2"]), { LORALAB_RUNS_DIR: parallel });
    assert.equal(processes.status, 0, processes.stderr);
    const workers = [await startWorker(t, redis.url), await startWorker(t, redis.url)];
    const remote = await runCliAsync(t, sweepArgs(["--queue", redis.url]), { LORALAB_RUNS_DIR: queued });
    assert.equal(remote.status, 0, remote.stderr);

    const expected = parse(local.stdout);
    assert.equal(expected.trials.length, 6);
    assert.ok(expected.trials.every((x) => x.status === "completed" && x.metrics.perplexity! > 1));
    assert.deepEqual(numbers(parse(processes.stdout)), numbers(expected));
    assert.deepEqual(numbers(parse(remote.stdout)), numbers(expected));
    assert.deepEqual(recordedLosses(parallel), recordedLosses(inline));
    assert.deepEqual(recordedLosses(queued), recordedLosses(inline));
    for (const w of workers) assert.match(w.stderr, /completed/, "both workers took trials");
    // The summary: one row per configuration, mean and sd over its two seeds.
    const r1 = expected.trials.filter((x) => x.config.r === 1).map((x) => x.finalLoss!);
    const summary = parse(local.stdout).summary;
    assert.deepEqual(
      summary.map((s) => [s.config, s.n]),
      [
        [{ r: 1 }, 2],
        [{ r: 2 }, 2],
        [{ r: 4 }, 2],
      ],
    );
    assert.ok(Math.abs(summary[0]!.mean.finalLoss! - (r1[0]! + r1[1]!) / 2) < 1e-12);
    assert.ok(Math.abs(summary[0]!.sd.finalLoss! - Math.abs(r1[0]! - r1[1]!) / Math.SQRT2) < 1e-12);
  },
);

test(
  "a worker killed with SIGKILL mid-trial: its trial goes to the other worker, and every trial is recorded exactly once",
  { skip, timeout: 600_000 },
  async (t) => {
    const redis = await startRedis(t);
    const runs = registry();
    const stall = ["--stall-seconds", "4"];
    const victim = await startWorker(t, redis.url, stall);
    const sweep = startCli(t, sweepArgs(["--queue", redis.url], { steps: 12, grid: "r=1,2" }), { LORALAB_RUNS_DIR: runs });
    const [, killed] = await victim.waitFor(/trial ([0-9a-f]{12}) \(.*\): started/);
    victim.child.kill("SIGKILL"); // mid-trial, without warning: its job's lock is never renewed or released
    const survivor = await startWorker(t, redis.url, stall);
    const { code } = await sweep.exited;
    assert.equal(code, 0, sweep.stderr);
    const result = parse(sweep.stdout);
    assert.equal(result.trials.length, 4);
    assert.ok(
      result.trials.every((x) => x.status === "completed"),
      sweep.stdout,
    );
    assert.equal(new Set(result.trials.map((x) => x.digest)).size, 4);
    assert.match(
      survivor.stderr,
      new RegExp(`trial ${killed} \\(.*\\): started \\(attempt 2\\)`),
      "the killed trial ran again on the other worker",
    );
    const losses = recordedLosses(runs);
    assert.equal(Object.keys(losses).length, 4, "one registry run per trial");
    for (const l of Object.values(losses)) assert.equal(l.length, 12, "every step recorded once");
  },
);

test("a finished sweep submitted again runs nothing (no worker is even needed)", { skip, timeout: 300_000 }, async (t) => {
  const redis = await startRedis(t);
  const runs = registry();
  const worker = await startWorker(t, redis.url);
  const first = await runCliAsync(t, sweepArgs(["--queue", redis.url], { grid: "r=1" }), { LORALAB_RUNS_DIR: runs });
  assert.equal(first.status, 0, first.stderr);
  worker.child.kill("SIGKILL");
  const again = startCli(
    t,
    sweepArgs(["--queue", redis.url], { grid: "r=1" }).filter((a) => a !== "--json"),
    { LORALAB_RUNS_DIR: runs },
  );
  const { code } = await again.exited;
  assert.equal(code, 0, again.stderr);
  assert.equal(again.stderr.match(/: reused \(trial-/g)?.length, 2, again.stderr);
});

test("a trial with a bad config fails alone, once, with its message; the others complete", { skip, timeout: 300_000 }, async (t) => {
  const redis = await startRedis(t);
  const worker = await startWorker(t, redis.url);
  const run = await runCliAsync(t, sweepArgs(["--queue", redis.url], { grid: "targets=q_proj,nope_proj" }), {
    LORALAB_RUNS_DIR: registry(),
  });
  assert.equal(run.status, 3, run.stderr);
  const result = parse(run.stdout);
  const failed = result.trials.filter((x) => x.status === "failed");
  assert.deepEqual(
    failed.map((x) => x.config),
    [{ targets: ["nope_proj"] }, { targets: ["nope_proj"] }],
  );
  for (const f of failed) assert.match(f.error!, /targetModules: \["nope_proj"\] match no layer of the model/);
  assert.equal(result.trials.filter((x) => x.status === "completed").length, 2);
  assert.deepEqual(
    result.summary.map((s) => s.n),
    [2, 0],
  );
  assert.equal(worker.stderr.match(/: failed: /g)?.length, 2, `a user error is not retried:\n${worker.stderr}`);
});

test("Redis unreachable: sweep and worker fail with a clear error within seconds", { skip, timeout: 60_000 }, async (t) => {
  const url = `redis://127.0.0.1:${await freePort()}/0`;
  for (const args of [sweepArgs(["--queue", url], { grid: "r=1" }), ["worker", "--queue", url]]) {
    const started = Date.now();
    const run = await runCliAsync(t, args);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`cannot reach Redis at ${url}: connect ECONNREFUSED`));
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  }
});

test("SIGTERM: a worker finishes its running trial, then stops", { skip, timeout: 300_000 }, async (t) => {
  const redis = await startRedis(t);
  const worker = await startWorker(t, redis.url);
  const sweep = startCli(t, sweepArgs(["--queue", redis.url], { steps: 8, grid: "r=1" }), { LORALAB_RUNS_DIR: registry() });
  const [, digest] = await worker.waitFor(/trial ([0-9a-f]{12}) \(.*\): started/);
  worker.child.kill("SIGTERM");
  const { code } = await worker.exited;
  assert.equal(code, 0, worker.stderr);
  assert.match(worker.stderr, new RegExp(`trial ${digest} \\(.*\\): completed`));
  assert.equal(worker.stderr.match(/: started/g)?.length, 1, "no new trial after SIGTERM");
  // The second seed's trial waits in the queue for another worker.
  await startWorker(t, redis.url);
  assert.equal((await sweep.exited).code, 0, sweep.stderr);
});

test(
  "SIGTERM past the grace period returns the running trial to the queue, and another worker completes it",
  { skip, timeout: 300_000 },
  async (t) => {
    const redis = await startRedis(t);
    const worker = await startWorker(t, redis.url, ["--grace-seconds", "0.5"]);
    const sweep = startCli(
      t,
      sweepArgs(["--queue", redis.url], { steps: 40, grid: "r=1" }).filter((a, i, all) => !(a === "--seeds" || all[i - 1] === "--seeds")),
      {
        LORALAB_RUNS_DIR: registry(),
      },
    );
    const [, digest] = await worker.waitFor(/trial ([0-9a-f]{12}) \(.*\): started/);
    worker.child.kill("SIGTERM");
    assert.equal((await worker.exited).code, 0, worker.stderr);
    assert.match(worker.stderr, new RegExp(`trial ${digest} \\(.*\\): returned to the queue`));
    const next = await startWorker(t, redis.url);
    assert.equal((await sweep.exited).code, 0, sweep.stderr);
    assert.match(next.stderr, new RegExp(`trial ${digest} \\(.*\\): completed`));
  },
);

test("a password and TLS (rediss://) pass through to Redis and are never printed", { skip, timeout: 300_000 }, async (t) => {
  const password = "s3cret-p4ss";
  const redis = await startRedis(t, { password, tls: true });
  const env = { NODE_EXTRA_CA_CERTS: redis.caFile! };
  const worker = await startWorker(t, redis.url, [], env);
  const run = await runCliAsync(
    t,
    sweepArgs(["--queue", redis.url], { grid: "r=1" }).filter((a) => a !== "--json"),
    { ...env, LORALAB_RUNS_DIR: registry() },
  );
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /on rediss:\/\/:\*\*\*@localhost:\d+\/0/);
  const wrong = await runCliAsync(t, ["worker", "--queue", redis.url.replace(password, "wrong-one")], env);
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /cannot reach Redis at rediss:\/\/:\*\*\*@localhost:\d+\/0: WRONGPASS/);
  worker.child.kill("SIGTERM");
  await worker.exited;
  for (const output of [run.stdout, run.stderr, worker.stderr, wrong.stderr])
    assert.ok(!output.includes(password) && !output.includes("wrong-one"), output);
});
