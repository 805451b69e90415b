/**
 * Every notebook in notebooks/ runs headless with its smoke parameters (`-p smoke=true` when it has a cell tagged
 * `parameters`, else as it is) twice: through `loralab run` (no Python, no Jupyter) and through
 * `jupyter nbconvert --execute` on the loralab kernel (a copy with the same parameters injected by
 * src/notebook/parameters.ts). What they store is what GitHub, nbviewer and JupyterLab need: valid nbformat, no
 * errors, vega-lite as a JSON object with a PNG beside it.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureBuilt } from "./helpers/build.js";
import { jupyterEnv } from "./helpers/jupyter.js";
import { REPO, tempDir } from "./helpers/paths.js";
import { PYTHON, loralabRun, nbformatError, nbformatMissing, readStored, smokeFlags, writeSmokeNotebook } from "./helpers/run-notebook.js";

// The hub-model notebook downloads a model when online; its stored outputs and these runs are offline ones.
process.env.HF_HUB_OFFLINE = "1";

const NOTEBOOKS = path.join(REPO, "notebooks");
const canRun = fs.existsSync("/usr/bin/jupyter-nbconvert") && spawnSync(PYTHON, ["-c", "import nbformat, nbclient"]).status === 0;
const skip = canRun ? false : "needs Debian's jupyter-nbconvert and python3-nbclient (CI installs them)";

let env: NodeJS.ProcessEnv;
const name = `loralab-nb-${process.pid}`;

before(() => {
  ensureBuilt();
  if (!canRun) return;
  env = { ...jupyterEnv(name), LORALAB_RUNS_DIR: tempDir("nb-runs") };
});

/** What an executed notebook must hold: valid nbformat, no error outputs, each chart with its PNG. */
function checkExecuted(out: string): void {
  if (nbformatMissing) console.log(`# nbformat validation skipped: ${nbformatMissing}`);
  else assert.equal(nbformatError(out), undefined);
  const outputs = readStored(out).cells.flatMap((c) => c.outputs ?? []);
  assert.deepEqual(
    outputs.filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`),
    [],
  );
  const charts = outputs.filter((o) => o.data?.["application/vnd.vegalite.v5+json"] !== undefined);
  assert.ok(charts.length >= 1, "the notebook shows at least one chart");
  for (const o of charts) {
    const spec = o.data!["application/vnd.vegalite.v5+json"];
    assert.equal(typeof spec, "object", "vega-lite is stored as a JSON object, not a string");
    const png = Buffer.from(String(o.data!["image/png"]), "base64");
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG rendering beside each chart");
    assert.ok(png.length > 5000, "the PNG has content");
  }
}

describe("example notebooks", () => {
  for (const file of fs
    .readdirSync(NOTEBOOKS)
    .filter((f) => f.endsWith(".ipynb"))
    .sort()) {
    const source = path.join(NOTEBOOKS, file);

    test(
      `${file} runs through loralab run with smoke parameters (no Python) and stores valid, renderable outputs`,
      { timeout: 600_000 },
      async () => {
        const dir = tempDir("nb-run");
        const input = path.join(dir, file);
        fs.copyFileSync(source, input);
        const out = path.join(dir, `out-${file}`);
        const flags = (await smokeFlags(source)).flatMap((p) => ["-p", p]);
        const r = loralabRun([input, ...flags, "-o", out], dir, { LORALAB_RUNS_DIR: path.join(dir, "runs") }, 590_000);
        assert.equal(r.status, 0, r.stderr.slice(-4000));
        checkExecuted(out);
      },
    );

    test(`${file} executes with smoke parameters through jupyter nbconvert on the loralab kernel`, { skip, timeout: 600_000 }, async () => {
      const dir = tempDir("nb");
      const input = await writeSmokeNotebook(source, path.join(dir, `in-${file}`));
      const out = path.join(dir, file);
      const run = spawnSync(
        "/usr/bin/jupyter",
        [
          "nbconvert",
          "--to",
          "notebook",
          "--execute",
          `--ExecutePreprocessor.kernel_name=${name}`,
          "--ExecutePreprocessor.timeout=600",
          "--output",
          out,
          input,
        ],
        { cwd: dir, env, encoding: "utf8", timeout: 590_000 },
      );
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-4000));
      checkExecuted(out);
    });
  }
});
