/**
 * `loralab run`: the real binary (dist/, through bin/loralab.js) runs notebooks written here through the kernel's
 * handler and executor: papermill's parameters, what is stored (streams, displays updated in place, cell-mapped
 * tracebacks), the exit status and messages of a failing cell, a timeout, Ctrl-C during training, bad input.
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureBuilt } from "./helpers/build.js";
import { expectCliError } from "./helpers/cli.js";
import { scratch, writeNotebookFile, type CellSpec } from "./helpers/notebooks.js";
import { CLI } from "./helpers/paths.js";
import { loralabRun, nbformatError, nbformatMissing, readStored } from "./helpers/run-notebook.js";

before(() => ensureBuilt());

const tagged = (file: string, index: number, tags: string[]) => {
  const nb = JSON.parse(fs.readFileSync(file, "utf8"));
  nb.cells[index].metadata.tags = tags;
  fs.writeFileSync(file, JSON.stringify(nb, null, 1));
  return file;
};
const text = (t: string | string[] | undefined) => (Array.isArray(t) ? t.join("") : (t ?? ""));
const plain = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

function notebook(t: import("node:test").TestContext, cells: CellSpec[]) {
  const dir = scratch(t, "run");
  return { dir, file: writeNotebookFile(dir, "nb.ipynb", cells) };
}

test("-p values of every JSON kind and a plain string: the injected cell, its place and tag, the outputs", { timeout: 180_000 }, (t) => {
  const { dir, file } = notebook(t, [
    { markdown: "# Parameters" },
    {
      code: 'const n = 1;\nconst rate = 0.5;\nconst smoke = false;\nconst none = null;\nconst ranks = [1];\nconst cfg = { r: 1 };\nconst name = "x";\nconst quoted = "y";',
    },
    { code: "console.log(JSON.stringify([n, rate, smoke, none, ranks, cfg, name, quoted]));\nconsole.log(typeof n, typeof smoke);" },
    { code: 'const h = display("step 1");\nh.update("step 2");\nconsole.error("half way");\nh.update("step 3");\nn * 2' },
  ]);
  tagged(file, 1, ["parameters"]);
  const params = [
    "n=3",
    "rate=2.5e-3",
    "smoke=true",
    "none=null",
    "ranks=[1,4,16]",
    'cfg={"r":8,"alpha":16}',
    "name=hello world",
    'quoted="7"',
  ];
  const out = path.join(dir, "out.ipynb");
  const r = loralabRun([file, ...params.flatMap((p) => ["-p", p]), "-o", out], dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^\[1\/4\] cell 2 ✓ \d+\.\d s$/m);
  assert.match(r.stderr, /^\[4\/4\] cell 5 ✓ \d+\.\d s$/m);
  const nb = readStored(out);
  assert.deepEqual(
    nb.cells.map((c) => c.metadata.tags ?? []),
    [[], ["parameters"], ["injected-parameters"], [], []],
    "the injected cell right after the parameters cell",
  );
  assert.equal(
    text(nb.cells[2]!.source),
    [
      "// Parameters (injected by loralab run)",
      "const n = 3;",
      "const rate = 0.0025;",
      "const smoke = true;",
      "const none = null;",
      "const ranks = [1,4,16];",
      'const cfg = {"r":8,"alpha":16};',
      'const name = "hello world";',
      'const quoted = "7";',
    ].join("\n"),
  );
  assert.deepEqual(
    nb.cells.map((c) => c.execution_count ?? null),
    [null, 1, 2, 3, 4],
  );
  assert.deepEqual(nb.cells[3]!.outputs, [
    { output_type: "stream", name: "stdout", text: '[3,0.0025,true,null,[1,4,16],{"r":8,"alpha":16},"hello world","7"]\nnumber boolean\n' },
  ]);
  const last = nb.cells[4]!.outputs!;
  assert.deepEqual(
    last.map((o) => o.output_type),
    ["display_data", "stream", "execute_result"],
  );
  assert.deepEqual(last[0]!.data, { "text/plain": "'step 3'" }, "the display holds its last update");
  assert.equal(text(last[1]!.text), "half way\n");
  assert.deepEqual(last[2], { output_type: "execute_result", execution_count: 4, data: { "text/plain": "6" }, metadata: {} });

  // Run the output again with other values: the injected cell is replaced, not added.
  const again = path.join(dir, "again.ipynb");
  const r2 = loralabRun([out, "-p", "n=10", "-o", again], dir);
  assert.equal(r2.status, 0, r2.stderr);
  const nb2 = readStored(again);
  assert.equal(nb2.cells.filter((c) => c.metadata.tags?.includes("injected-parameters")).length, 1);
  assert.equal(text(nb2.cells[2]!.source), "// Parameters (injected by loralab run)\nconst n = 10;");
  assert.equal(text(nb2.cells[4]!.outputs!.at(-1)!.data!["text/plain"] as string), "20");
  if (!nbformatMissing) assert.equal(nbformatError(out), undefined);
});

test("no parameters cell: a warning, and the parameters go to the top; the default output is NB.out.ipynb", { timeout: 120_000 }, (t) => {
  const { dir, file } = notebook(t, [{ code: "const k = 1;" }, { code: "k + 1" }]);
  const r = loralabRun([file, "-p", "k=41"], dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: .*nb\.ipynb has no cell tagged "parameters": the parameters were injected at the top/);
  const nb = readStored(path.join(dir, "nb.out.ipynb"));
  assert.deepEqual(nb.cells[0]!.metadata.tags, ["injected-parameters"]);
  // The notebook's own `const k = 1` comes after the injected one, and wins (as in papermill).
  assert.deepEqual(nb.cells[2]!.outputs![0]!.data, { "text/plain": "2" });
  assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).cells.length, 2, "the input is left as it was");
});

test(
  "a throw on line 3 of cell 5: exit 1 naming the cell, its first line and the error; the partial notebook",
  { timeout: 120_000 },
  (t) => {
    const { dir, file } = notebook(t, [
      { code: "const a = 1;" },
      { code: 'console.log("two")' },
      { code: "const b = a + 1;" },
      { code: "b" },
      { code: "function boom(x: number) {\n  const y = x * 2;\n  throw new Error(`too big: ${y}`);\n}\nboom(b)" },
      { code: 'console.log("never")' },
    ]);
    const out = path.join(dir, "out.ipynb");
    const html = path.join(dir, "out.html");
    const r = loralabRun([file, "-o", out, "--html", html], dir);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^\[5\/6\] cell 5 ✗ /m);
    assert.match(r.stderr, /^loralab run: cell 5 \("function boom\(x: number\) \{"\) failed: Error: too big: 4$/m);
    assert.match(r.stderr, /at boom \(Cell In\[5\], line 3:\d+\)/, "the cell-mapped traceback on the terminal");
    assert.doesNotMatch(r.stderr, /\[6\/6\]/);
    const nb = readStored(out);
    const error = nb.cells[4]!.outputs!.find((o) => o.output_type === "error")!;
    assert.equal(error.ename, "Error");
    assert.equal(error.evalue, "too big: 4");
    assert.match(plain(error.traceback!.join("\n")), /at boom \(Cell In\[5\], line 3:\d+\)/);
    assert.deepEqual(nb.cells[5]!.outputs, [], "the cell after the error did not run");
    assert.equal(nb.cells[5]!.execution_count, null);
    assert.deepEqual(nb.cells[1]!.outputs, [{ output_type: "stream", name: "stdout", text: "two\n" }]);
    assert.match(fs.readFileSync(html, "utf8"), /too big: 4/, "--html writes the page of the partial notebook too");
    if (!nbformatMissing) assert.equal(nbformatError(out), undefined);
  },
);

test("--timeout: a cell stuck in while (true) {} is interrupted and named; exit 1", { timeout: 120_000 }, (t) => {
  const { dir, file } = notebook(t, [{ code: "let spins = 0;" }, { code: "while (true) {\n  spins++;\n}" }, { code: "spins" }]);
  const out = path.join(dir, "out.ipynb");
  const started = Date.now();
  const r = loralabRun([file, "-o", out, "--timeout", "2"], dir);
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /^loralab run: cell 2 \("while \(true\) \{"\) timed out after 2 s and was interrupted; the cells after it were not run$/m,
  );
  assert.ok(Date.now() - started < 60_000);
  const nb = readStored(out);
  assert.equal(nb.cells[1]!.outputs!.at(-1)!.ename, "Interrupted");
  assert.deepEqual(nb.cells[2]!.outputs, []);
});

test(
  "Ctrl-C (SIGINT) during a training cell: stopped at a step boundary, partial notebook written, exit 130",
  { timeout: 300_000 },
  async (t) => {
    const { dir, file } = notebook(t, [
      {
        code: 'const base = await model("tiny-moby");\nconst blocks = dataset("moby-dick", { blockSize: 64, tokenizer: base.tokenizer }).take(64);',
      },
      {
        code: 'const run = await base.lora(<r:4>).train(blocks, { maxSteps: 400, batchSize: 4, lr: 1e-3, onStep: (log) => { if (log.step === 3) require("node:fs").writeFileSync("progress", String(log.step)); } });\nrun',
      },
      { code: 'console.log("never")' },
    ]);
    const out = path.join(dir, "out.ipynb");
    const child = spawn(process.execPath, [CLI, "run", file, "-o", out], {
      cwd: dir,
      env: { ...process.env, LORALAB_RUNS_DIR: path.join(dir, "runs") },
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 200_000;
    while (!fs.existsSync(path.join(dir, "progress"))) {
      assert.ok(Date.now() < deadline, `training never started:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /^loralab run: stopped by Ctrl-C in cell 2; the cells after it were not run$/m);
    const nb = readStored(out);
    const outputs = nb.cells[1]!.outputs!;
    assert.equal(outputs.at(-1)!.ename, "TrainingInterrupted", JSON.stringify(outputs.at(-1)));
    assert.match(text(outputs[0]!.data?.["text/plain"] as string), /step \d+\/400/, "the live progress display, as last updated");
    assert.deepEqual(nb.cells[2]!.outputs, []);
    if (!nbformatMissing) assert.equal(nbformatError(out), undefined);
  },
);

test("bad input: one line naming the file or flag, exit 2", (t) => {
  const dir = scratch(t, "run-bad");
  const missing = path.join(dir, "missing.ipynb");
  expectCliError(["run", missing], [missing, "cannot read the notebook"]);
  const bad = path.join(dir, "bad.ipynb");
  fs.writeFileSync(bad, "{ not json");
  expectCliError(["run", bad], [bad, "not a notebook"]);
  const good = writeNotebookFile(dir, "good.ipynb", [{ code: "1" }]);
  expectCliError(["run", good, "-p", "smoke"], ["-p smoke", "expected key=value"]);
  expectCliError(["run", good, "-p", "1x=2"], ["-p 1x=2", "not a variable name"]);
  expectCliError(["run", good, "--bogus"], ["--bogus"]);
  expectCliError(["run", good, "--timeout", "soon"], ["--timeout", "soon"]);
  expectCliError(["run", good, "-o", path.join(dir, "no", "out.ipynb")], ["-o", "no such folder"]);
  assert.equal(fs.existsSync(path.join(dir, "good.out.ipynb")), false, "nothing is run or written");
});
