/**
 * The example notebooks run headless on the loralab kernel (jupyter nbconvert --execute), and what they
 * store is what GitHub, nbviewer and JupyterLab need: valid nbformat, no errors, vega-lite as a JSON
 * object with a PNG beside it.
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { jupyterEnv } from "./helpers/jupyter.js";
import { REPO, tempDir } from "./helpers/paths.js";

const PYTHON = "/usr/bin/python3";
const NOTEBOOKS = path.join(REPO, "notebooks");
const canRun = fs.existsSync("/usr/bin/jupyter-nbconvert") && spawnSync(PYTHON, ["-c", "import nbformat, nbclient"]).status === 0;
const skip = canRun ? false : "needs Debian's jupyter-nbconvert and python3-nbclient (CI installs them)";

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}
interface Notebook {
  cells: { cell_type: string; outputs?: Output[] }[];
}

let env: NodeJS.ProcessEnv;
const name = `loralab-nb-${process.pid}`;

before(() => {
  if (!canRun) return;
  env = { ...jupyterEnv(name), LORALAB_RUNS_DIR: tempDir("nb-runs") };
});

describe("example notebooks", () => {
  for (const file of fs
    .readdirSync(NOTEBOOKS)
    .filter((f) => f.endsWith(".ipynb"))
    .sort()) {
    test(`${file} executes with the loralab kernel and stores valid, renderable outputs`, { skip, timeout: 600_000 }, () => {
      const dir = tempDir("nb");
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
          path.join(NOTEBOOKS, file),
        ],
        { cwd: dir, env, encoding: "utf8", timeout: 590_000 },
      );
      assert.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-4000));
      const validate = spawnSync(PYTHON, ["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))", out], {
        encoding: "utf8",
      });
      assert.equal(validate.status, 0, validate.stderr);
      const notebook = JSON.parse(fs.readFileSync(out, "utf8")) as Notebook;
      const outputs = notebook.cells.flatMap((c) => c.outputs ?? []);
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
    });
  }
});
