/**
 * A queued sweep in a real notebook: the loralab kernel (installed into a temp prefix) runs a cell that submits a
 * sweep to a real Redis served by a `loralab worker`, executed headless by `jupyter nbconvert --execute`. The
 * cell's live output (one display, updated in place) ends showing every trial done and their loss curves, which
 * arrived as job progress from the worker process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CLI, tempDir } from "./helpers/paths.js";
import { hasRedis, startRedis } from "./helpers/redis.js";
import { startWorker } from "./helpers/workers.js";

const PYTHON = "/usr/bin/python3";
const canRun =
  hasRedis && fs.existsSync("/usr/bin/jupyter-nbconvert") && spawnSync(PYTHON, ["-c", "import nbformat, nbclient"]).status === 0;
const skip = canRun ? false : "needs redis-server, jupyter-nbconvert and python3-nbclient (CI installs them)";

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}

/** nbformat stores multi-line text as a list of lines. */
const textOf = (v: unknown) => (Array.isArray(v) ? v.join("") : String(v));

test(
  "in the kernel, a sweep on the queue shows its progress and the workers' loss curves in one updating output",
  { skip, timeout: 600_000 },
  async (t) => {
    const redis = await startRedis(t);
    await startWorker(t, redis.url);
    const dir = tempDir("sweep-kernel");
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const name = `loralab-sweep-${process.pid}`;
    const prefix = path.join(dir, "prefix");
    const install = spawnSync(process.execPath, [CLI, "kernel", "install", "--prefix", prefix, "--name", name], { encoding: "utf8" });
    assert.equal(install.status, 0, install.stderr);
    const source = `const rows = Array.from({ length: 8 }, (_, i) => ({ text: "Call me Ishmael, number " + i + "." }));
const result = await sweep({ r: [1, 2] }, { model: "tiny-moby", data: rows, train: { maxSteps: 6, batchSize: 4 }, queue: ${JSON.stringify(redis.url)}, liveEvery: 0.2 });
result.trials.map((t) => t.status).join(",")`;
    const notebook = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { kernelspec: { name, display_name: "loralab", language: "typescript" } },
      cells: [{ cell_type: "code", id: "sweep", metadata: {}, execution_count: null, outputs: [], source }],
    };
    const file = path.join(dir, "sweep.ipynb");
    fs.writeFileSync(file, JSON.stringify(notebook));
    const env = {
      ...process.env,
      JUPYTER_PATH: path.join(prefix, "share", "jupyter"),
      JUPYTER_RUNTIME_DIR: path.join(dir, "runtime"),
      LORALAB_RUNS_DIR: path.join(dir, "runs"),
      PYTHONWARNINGS: "ignore",
    };
    const run = spawnSync(
      "/usr/bin/jupyter",
      ["nbconvert", "--to", "notebook", "--execute", "--inplace", `--ExecutePreprocessor.kernel_name=${name}`, file],
      {
        cwd: dir,
        env,
        encoding: "utf8",
        timeout: 500_000,
      },
    );
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-4000));
    const outputs = (JSON.parse(fs.readFileSync(file, "utf8")) as { cells: { outputs: Output[] }[] }).cells[0]!.outputs;
    assert.deepEqual(
      outputs.filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`),
      [],
    );
    const live = outputs.find((o) => o.output_type === "display_data" && textOf(o.data?.["text/plain"]).startsWith("sweep "));
    assert.ok(live, `a live progress output: ${JSON.stringify(outputs).slice(0, 2000)}`);
    const text = textOf(live.data!["text/plain"]);
    assert.match(text, /^sweep sweep-[0-9a-f]{10} on redis:\/\/127\.0\.0\.1:\d+\/0: 2\/2 done · 0 running · 0 failed/);
    // The kernel sends a display's chart as its own output right after the table (frontends show one of the two).
    const chart = outputs.slice(outputs.indexOf(live) + 1).find((o) => o.data?.["application/vnd.vegalite.v5+json"] !== undefined);
    assert.ok(chart, "the loss curves follow the progress table as their own output");
    const curves = (chart.data!["application/vnd.vegalite.v5+json"] as { data: { values: { step: number; series: string }[] } }).data
      .values;
    assert.deepEqual([...new Set(curves.map((p) => p.series))].sort(), ["r=1", "r=2"]);
    assert.equal(curves.length, 12, "6 steps of each trial");
    const result = outputs.find((o) => o.output_type === "execute_result");
    assert.equal(textOf(result?.data?.["text/plain"]), "'completed,completed'");
  },
);
