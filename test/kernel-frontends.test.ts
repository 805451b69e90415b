/**
 * What frontends show of the kernel's rich outputs: a training run's live output and a run's display carry an
 * HTML table and a vega-lite chart, and frontends show one MIME type per output (HTML first), so the chart must
 * come as an output of its own, with its PNG. Checked on nbconvert's HTML export and, when Debian's chromium
 * is installed, in classic Notebook 6.4's own frontend.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { ensureBuilt } from "./helpers/build.js";
import { jupyterEnv, notebookOf } from "./helpers/jupyter.js";
import { tempDir } from "./helpers/paths.js";

const PYTHON = "/usr/bin/python3";
const CHROMIUM = "/usr/bin/chromium";
const VEGALITE = "application/vnd.vegalite.v5+json";
const canRun = fs.existsSync("/usr/bin/jupyter-nbconvert") && spawnSync(PYTHON, ["-c", "import nbformat, nbclient"]).status === 0;
const skip = canRun ? false : "needs Debian's jupyter-nbconvert and python3-nbclient (CI installs them)";
const name = `loralab-frontends-${process.pid}`;

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
}

let env: NodeJS.ProcessEnv;
let dir: string;
/** The executed notebook: a training run with its live output, then the run as a cell's value. */
let executed: { cells: { outputs?: Output[] }[] };

before(() => {
  if (!canRun) return;
  ensureBuilt();
  env = { ...jupyterEnv(name), JUPYTER_CONFIG_DIR: tempDir("frontends-config"), LORALAB_RUNS_DIR: tempDir("frontends-runs") };
  dir = tempDir("frontends");
  const rows = "Array.from({ length: 8 }, (_, i) => ({ text: `Call me Ishmael, said sailor number ${i}.` }))";
  const notebook = notebookOf(name, [
    'const base = await model("tiny-moby");',
    `const run = await base.lora({ r: 2 }).train(${rows}, { maxSteps: 6, batchSize: 2, runsDir: false, liveEvery: 0.001 });`,
    "run",
  ]);
  fs.writeFileSync(path.join(dir, "charts.ipynb"), JSON.stringify(notebook));
  const run = spawnSync(
    "/usr/bin/jupyter",
    ["nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=300", "--output", "executed.ipynb", "charts.ipynb"],
    { cwd: dir, env, encoding: "utf8", timeout: 400_000 },
  );
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-4000));
  executed = JSON.parse(fs.readFileSync(path.join(dir, "executed.ipynb"), "utf8"));
});

const isPng = (o: Output) => {
  const png = Buffer.from(String(o.data?.["image/png"] ?? ""), "base64");
  return png.length > 1000 && png.subarray(1, 4).toString("latin1") === "PNG";
};

test(
  "the live training output: its progress line, and its loss curve as an output of its own with a PNG",
  { skip, timeout: 600_000 },
  () => {
    const outputs = executed.cells[1]!.outputs!;
    const table = outputs.filter((o) => o.data?.["text/html"] !== undefined);
    const charts = outputs.filter((o) => o.data?.[VEGALITE] !== undefined);
    assert.equal(table.length, 1, JSON.stringify(outputs).slice(0, 2000));
    assert.match(String(table[0]!.data!["text/html"]), /step 6\/6/);
    assert.equal(table[0]!.data![VEGALITE], undefined, "the HTML output carries no chart that HTML would hide");
    assert.equal(charts.length, 1);
    assert.ok(isPng(charts[0]!), "the chart has its PNG");
    assert.equal((charts[0]!.data![VEGALITE] as { data: { values: unknown[] } }).data.values.length, 6, "the curve of all 6 steps");
  },
);

test("a run as a cell's value: the table as the result, the chart after it with its PNG", { skip, timeout: 600_000 }, () => {
  const outputs = executed.cells[2]!.outputs!;
  assert.deepEqual(
    outputs.map((o) => o.output_type),
    ["execute_result", "display_data"],
  );
  assert.match(String(outputs[0]!.data!["text/html"]), /trainable params/);
  assert.ok(outputs[1]!.data![VEGALITE] !== undefined && isPng(outputs[1]!));
});

test("nbconvert's HTML export shows every chart (as its PNG) beside the tables", { skip, timeout: 600_000 }, () => {
  const r = spawnSync("/usr/bin/jupyter", ["nbconvert", "--to", "html", "--output", "executed.html", "executed.ipynb"], {
    cwd: dir,
    env,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const html = fs.readFileSync(path.join(dir, "executed.html"), "utf8");
  const charts = executed.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.[VEGALITE] !== undefined);
  const shown = charts.filter((o) => html.includes(`data:image/png;base64,${String(o.data!["image/png"]).slice(0, 200)}`));
  assert.equal(shown.length, charts.length, `${shown.length} of ${charts.length} charts are in the HTML`);
  assert.match(html, /trainable params/);
  assert.match(html, /step 6\/6/);
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

/** Runs a command in its own process group; resolves with its stdout, killing the whole group at `timeoutMs`. */
function runGroup(command: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => (stdout += s));
    child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    // Chromium's helper processes keep the pipes open: end the whole group, not just the browser.
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group is gone already
      }
      resolve({ code, stdout, stderr });
    });
  });
}

test(
  "classic Notebook 6.4 in chromium shows the charts of the live output and of the run",
  {
    skip:
      skip ||
      (!fs.existsSync(CHROMIUM) && "needs Debian's chromium") ||
      (!fs.existsSync("/usr/bin/jupyter-notebook") && "needs jupyter-notebook"),
    timeout: 600_000,
  },
  async (t) => {
    const port = await freePort();
    const token = "frontends-test";
    const server = spawn(
      "/usr/bin/jupyter-notebook",
      ["--no-browser", "--allow-root", `--port=${port}`, "--ip=127.0.0.1", `--NotebookApp.token=${token}`, `--notebook-dir=${dir}`],
      { env, stdio: ["ignore", "ignore", "pipe"] },
    );
    // SIGTERM: the server shuts down the kernel the page started.
    t.after(() => server.kill("SIGTERM"));
    let log = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the notebook server did not start:\n${log}`)), 120_000);
      server.on("exit", () => (clearTimeout(timer), reject(new Error(`the notebook server exited:\n${log}`))));
      server.stderr!.setEncoding("utf8").on("data", (s: string) => {
        log += s;
        if (log.includes(`:${port}/`)) (clearTimeout(timer), resolve());
      });
    });
    const url = `http://127.0.0.1:${port}/notebooks/executed.ipynb?token=${token}`;
    const flags = ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${tempDir("chromium")}`, "--virtual-time-budget=30000"];
    const dom = await runGroup(CHROMIUM, [...flags, "--dump-dom", url], 240_000);
    assert.equal(dom.code, 0, dom.stderr.slice(-2000));
    const cells = dom.stdout.split(/<div class="cell code_cell/).slice(1);
    assert.equal(cells.length, 3, "the notebook's three cells rendered");
    const pngs = (cell: string) =>
      (cell.match(/class="output_subarea output_png"[^>]*><img[^>]* src="data:image\/png;base64,/g) ?? []).length;
    assert.equal(pngs(cells[1]!), 1, "the live output's loss curve");
    assert.match(cells[1]!, /step 6\/6/, "and its progress line");
    assert.equal(pngs(cells[2]!), 1, "the run's chart");
    assert.match(cells[2]!, /trainable params/, "and the run's table");
  },
);
