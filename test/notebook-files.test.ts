/**
 * Notebook files (src/notebook): reading validates what the rest relies on, with messages naming the file, the
 * cell and the field; writing produces what Jupyter writes (byte for byte on the stored notebooks) and what
 * Python's nbformat accepts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseNotebook, readNotebook, writeNotebook } from "../src/notebook/nbformat.js";
import { REPO } from "./helpers/paths.js";
import { notebookJson, scratch } from "./helpers/notebooks.js";

const NOTEBOOKS = path.join(REPO, "notebooks");
const PYTHON = "/usr/bin/python3";
const noNbformat = spawnSync(PYTHON, ["-c", "import nbformat"]).status === 0 ? false : "needs Python's nbformat (python3-nbformat)";

for (const name of fs.readdirSync(NOTEBOOKS).filter((f) => f.endsWith(".ipynb"))) {
  test(`${name}: read and written again, the file is unchanged byte for byte`, async (t) => {
    const out = path.join(scratch(t, "nb-write"), name);
    await writeNotebook(out, await readNotebook(path.join(NOTEBOOKS, name)));
    assert.equal(fs.readFileSync(out, "utf8"), fs.readFileSync(path.join(NOTEBOOKS, name), "utf8"));
  });
}

test("a notebook changed and written validates with Python's nbformat", { skip: noNbformat }, async (t) => {
  const dir = scratch(t, "nb-write");
  const nb = await readNotebook(path.join(NOTEBOOKS, "quickstart.ipynb"));
  for (const cell of nb.cells) if (cell.cell_type === "code") cell.outputs = [{ output_type: "stream", name: "stdout", text: "ok\n" }];
  const out = path.join(dir, "changed.ipynb");
  await writeNotebook(out, nb);
  const r = spawnSync(PYTHON, ["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))", out], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(dir), ["changed.ipynb"], "no temporary file is left");
});

test("reading names the file, the cell and the field of what is wrong", () => {
  const bad = (mutate: (nb: Record<string, any>) => void) => {
    const nb = notebookJson([
      { markdown: "# t" },
      { code: "1", outputs: [{ output_type: "execute_result", data: { "text/plain": "1" }, metadata: {}, execution_count: 1 }] },
    ]);
    mutate(nb);
    return () => parseNotebook(JSON.stringify(nb), "nb.ipynb");
  };
  assert.doesNotThrow(bad(() => {}));
  assert.throws(
    bad((nb) => delete nb.nbformat),
    { message: "nb.ipynb: nbformat: expected 4 (the field is required), got nothing" },
  );
  assert.throws(
    bad((nb) => (nb.nbformat = 3)),
    { message: "nb.ipynb: nbformat: expected 4, got 3" },
  );
  assert.throws(
    bad((nb) => (nb.cells = {})),
    { message: "nb.ipynb: cells: expected a list, got {}" },
  );
  assert.throws(
    bad((nb) => (nb.cells[0].cell_type = "heading")),
    {
      message: 'nb.ipynb: cell 1: cell_type: expected one of "code", "markdown" or "raw", got "heading"',
    },
  );
  assert.throws(
    bad((nb) => (nb.cells[1].execution_count = -1)),
    {
      message: "nb.ipynb: cell 2: execution_count: expected a non-negative integer or null, got -1",
    },
  );
  assert.throws(
    bad((nb) => (nb.cells[1].outputs[0].data["text/plain"] = 7)),
    {
      message: 'nb.ipynb: cell 2: outputs[0].data["text/plain"]: expected a string or a list of strings, got 7',
    },
  );
  assert.throws(() => parseNotebook("[]", "nb.ipynb"), { message: "nb.ipynb: not a notebook: expected a JSON object" });
});
