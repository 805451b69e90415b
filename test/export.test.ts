/**
 * `loralab export`: real CLI processes on the stored notebooks in notebooks/ and on small notebooks written
 * here for the edge cases. `--to ts` output is type-checked with the project's TypeScript and run with tsx on the
 * notebook with its smoke parameters injected (its printed results compared with what `loralab run` of that same
 * notebook stored); `--to html` is opened in Debian's Chromium.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CLI, REPO } from "./helpers/paths.js";
import {
  maskVolatile,
  runTsx,
  scratch,
  scriptFolder,
  storedResults,
  typeCheck,
  writeNotebookFile,
  type CellSpec,
} from "./helpers/notebooks.js";
import { chromiumMissing, openPage } from "./helpers/browser.js";
import { loralabRun, writeSmokeNotebook } from "./helpers/run-notebook.js";

// The hub-model notebook downloads a model when online; its stored outputs and these runs are offline ones.
process.env.HF_HUB_OFFLINE = "1";

const NOTEBOOKS = path.join(REPO, "notebooks");
const notebooks = fs
  .readdirSync(NOTEBOOKS)
  .filter((f) => f.endsWith(".ipynb"))
  .sort();

function loralab(args: string[], cwd = REPO) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 120_000 });
}

/** Exports `notebook` into `dir` (as NAME.ext) and returns the written file. */
function exportTo(notebook: string, format: "ts" | "html", dir: string): string {
  const out = path.join(dir, `${path.basename(notebook, ".ipynb")}.${format}`);
  const r = loralab(["export", notebook, "--to", format, "-o", out]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** Exports a notebook made of `cells` to TypeScript in a script folder; returns the folder, file and text. */
function exportCells(t: import("node:test").TestContext, cells: CellSpec[]) {
  const dir = scriptFolder(t);
  const file = exportTo(writeNotebookFile(dir, "cells.ipynb", cells), "ts", dir);
  return { dir, file, text: fs.readFileSync(file, "utf8") };
}

// ---- the example notebooks ------------------------------------------------------------------------------

for (const name of notebooks) {
  const notebook = path.join(NOTEBOOKS, name);

  test(`${name} --to ts: the module type-checks with tsc --noEmit (strict)`, { timeout: 300_000 }, (t) => {
    const dir = scriptFolder(t);
    const file = exportTo(notebook, "ts", dir);
    const r = typeCheck(dir, [path.basename(file)]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  test(
    `${name} --to ts: with the smoke parameters, runs under tsx and prints what loralab run of the same notebook stored`,
    { timeout: 900_000 },
    async (t) => {
      // Both are real runs of the same parameter-injected notebook, each with its own run registry: the kernel's
      // (loralab run) stores the outputs, the exported module prints them. Masked: timing columns and run ids.
      const dir = scriptFolder(t);
      const injected = await writeSmokeNotebook(notebook, path.join(dir, name));
      const executed = path.join(dir, `${path.basename(name, ".ipynb")}.run.ipynb`);
      const run = loralabRun([injected, "-o", executed], dir, { LORALAB_RUNS_DIR: path.join(dir, "runs-kernel") }, 890_000);
      assert.equal(run.status, 0, run.stderr.slice(-4000));
      const file = exportTo(injected, "ts", dir);
      const r = runTsx(dir, path.basename(file));
      assert.equal(r.status, 0, r.stderr.slice(-4000));
      const stdout = maskVolatile(r.stdout);
      let from = 0;
      for (const [i, cell] of storedResults(executed).entries()) {
        // A cell's outputs may arrive in another order (a chart's PNG is rendered asynchronously): each is looked for from the cell's start.
        let end = from;
        for (const text of cell.texts) {
          const at = stdout.indexOf(maskVolatile(text), from);
          assert.ok(
            at >= 0,
            `code cell ${i + 1}: expected the script to print\n${maskVolatile(text)}\nafter position ${from} of:\n${stdout}`,
          );
          end = Math.max(end, at + maskVolatile(text).length);
        }
        from = end;
      }
      const images = [...r.stdout.matchAll(/^\[image: (.+)\]$/gm)].map((m) => path.join(dir, m[1]!));
      const charts = storedResults(executed).reduce((n, c) => n + c.charts, 0);
      assert.ok(images.length >= charts, `${images.length} images written for ${charts} chart results`);
      for (const image of images) assert.deepEqual([...fs.readFileSync(image).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], image);
    },
  );

  test(
    `${name} --to html: Chromium draws every chart live, with no console error and no network`,
    { skip: chromiumMissing, timeout: 120_000 },
    async (t) => {
      const dir = scratch(t, "export-html");
      const file = exportTo(notebook, "html", dir);
      const stored = JSON.parse(fs.readFileSync(notebook, "utf8")) as { cells: { outputs?: { data?: Record<string, unknown> }[] }[] };
      const charts = stored.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.["application/vnd.vegalite.v5+json"]).length;
      const { page, problems } = await openPage(t, file);
      await page.waitForFunction(() => [...document.querySelectorAll("[data-chart]")].every((c) => c.querySelector("svg, canvas")), null, {
        timeout: 60_000,
      });
      assert.equal(await page.locator("[data-chart]").count(), charts);
      assert.equal(await page.locator("[data-chart] img.fallback").count(), 0, "the PNGs give way to the live charts");
      assert.ok((await page.locator("[data-chart] .vega-embed svg .mark-line, [data-chart] .vega-embed svg .mark-rect").count()) > 0);
      assert.ok((await page.locator("section.markdown h1").count()) === 1, "markdown is rendered");
      assert.ok((await page.locator("pre.code span.k").count()) > 0, "code is highlighted");
      assert.deepEqual(problems, []);
    },
  );

  test(`${name} --to html: with JavaScript off each chart shows its PNG`, { skip: chromiumMissing, timeout: 120_000 }, async (t) => {
    const dir = scratch(t, "export-html");
    const file = exportTo(notebook, "html", dir);
    const { page, problems } = await openPage(t, file, { javaScript: false });
    const charts = await page.locator("[data-chart]").count();
    assert.ok(charts > 0);
    const widths = await page.$$eval("[data-chart] img.fallback", (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    assert.equal(widths.length, charts);
    assert.ok(
      widths.every((w) => w > 100),
      `decoded PNG widths: ${widths}`,
    );
    assert.deepEqual(problems, []);
  });
}

// ---- edge cases on small notebooks ---------------------------------------------------------------------

test("--to ts: imports are hoisted, merged per module and de-duplicated", { timeout: 120_000 }, (t) => {
  const { dir, file, text } = exportCells(t, [
    { code: 'import { readFileSync } from "node:fs";\nconst me = readFileSync("cells.ipynb", "utf8").length > 0;' },
    { code: 'import { existsSync, readFileSync } from "node:fs";\nimport type { Stats } from "node:fs";\nimport * as os from "node:os";' },
    {
      code: 'import { readFileSync as read } from "node:fs";\nconst s: Stats | undefined = undefined;\n[me, existsSync("cells.ipynb"), read("cells.ipynb").length > 0, typeof os.cpus, s]',
    },
  ]);
  const fsImports = text.split("\n").filter((l) => l.includes('from "node:fs"'));
  assert.deepEqual(fsImports, ['import { readFileSync, existsSync, type Stats, readFileSync as read } from "node:fs";']);
  assert.match(text, /^import \* as os from "node:os";$/m);
  assert.doesNotMatch(text.split("// %%")[1]!.concat(...text.split("// %%").slice(2)), /^import /m, "no import is left inside a cell");
  const checked = typeCheck(dir, [path.basename(file)]);
  assert.equal(checked.status, 0, checked.stdout);
  const r = runTsx(dir, path.basename(file));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "[ true, true, true, 'function', undefined ]\n");
});

test(
  "--to ts: a variable declared again in a later cell is renamed there and in later uses, and the module type-checks",
  { timeout: 120_000 },
  (t) => {
    const { dir, file, text } = exportCells(t, [
      { code: "const x = 2;\nconst twice = () => x * 2;" },
      { code: "const y = x + 1;" },
      { markdown: "Now `x` becomes a string." },
      { code: 'const x = "three";\nconst { length } = x;' },
      { code: "[1, 2].map((x) => x * 10).concat(length, y, twice());\n" },
      { code: "({ x, y, upper: x.toUpperCase() })" },
    ]);
    assert.match(text, /^const x_4 = "three";$/m);
    assert.match(text, /^const x = 2;$/m);
    assert.match(text, /^const \{ length \} = x_4;$/m);
    assert.match(text, /\(x\) => x \* 10/, "a parameter of the same name is left alone");
    assert.match(text, /display\(\{ x: x_4, y, upper: x_4\.toUpperCase\(\) \}\)/);
    const checked = typeCheck(dir, [path.basename(file)]);
    assert.equal(checked.status, 0, checked.stdout);
    const r = runTsx(dir, path.basename(file));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "[ 10, 20, 5, 3, 4 ]\n{ x: 'three', y: 3, upper: 'THREE' }\n");
  },
);

test("--to ts: config literals <r:8> become object literals; generics, assertions and strings stay", { timeout: 120_000 }, (t) => {
  const { dir, file, text } = exportCells(t, [
    {
      code: 'const id = <T,>(v: T): T => v;\nconst cfg = id(<r: 8, alpha: 2 * 8, note: "<r:1>">);\nconst n = id(<number>(<unknown>4)) + id<number>(1);',
    },
    { code: "[cfg, n]" },
  ]);
  assert.match(text, /id\(\{r: 8, alpha: 2 \* 8, note: "<r:1>"\}\)/);
  assert.match(text, /id\(<number>\(<unknown>4\)\) \+ id<number>\(1\)/);
  const r = runTsx(dir, path.basename(file));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "[ { r: 8, alpha: 16, note: '<r:1>' }, 5 ]\n");
});

test("--to ts: markdown cells become comments, cells become // %% sections", { timeout: 120_000 }, (t) => {
  const { text } = exportCells(t, [
    { markdown: "# Title\n\nSome *text*.\n" },
    { code: "const a = 1;" },
    { markdown: "*/ not a block comment" },
  ]);
  assert.match(
    text,
    /^\/\/ %% \[markdown\]\n\/\/ # Title\n\/\/\n\/\/ Some \*text\*\.\n\n\/\/ %%\nconst a = 1;\n\n\/\/ %% \[markdown\]\n\/\/ \*\/ not a block comment\n$/m,
  );
});

test("--to ts: a cell's last expression is displayed; display and console calls are not wrapped", { timeout: 120_000 }, (t) => {
  const { dir, file, text } = exportCells(t, [
    { code: "const rows = [{ a: 1, b: [1, 2] }];\nrows" },
    { code: 'console.log("logged")' },
    { code: "[1, 2].forEach(() => {}) // undefined: shows nothing, as in the notebook" },
    { code: 'display.html("<b>bold</b>");' },
    { code: "const n = 41;\nn + 1 // the answer" },
  ]);
  assert.match(text, /^import \{ display \} from "loralab";$/m);
  assert.match(text, /^display\(rows\);$/m);
  assert.match(text, /^console\.log\("logged"\)$/m);
  assert.match(text, /^display\(\[1, 2\]\.forEach\(\(\) => \{\}\)\);/m);
  assert.match(text, /^display\.html\("<b>bold<\/b>"\);$/m);
  assert.match(text, /^display\(n \+ 1\); \/\/ the answer$/m);
  const r = runTsx(dir, path.basename(file));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "[ { a: 1, b: [ 1, 2 ] } ]\nlogged\n<b>bold</b>\n42\n");
});

test("--to ts: a vega-lite chart shown by a script is written as a PNG beside it", { timeout: 120_000 }, (t) => {
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    data: { values: [{ a: 1 }, { a: 3 }] },
    mark: "bar",
    encoding: { y: { field: "a", type: "quantitative" } },
  };
  const { dir, file } = exportCells(t, [{ code: `const spec = ${JSON.stringify(spec)};\ndisplay.vegalite(spec);\nspec.mark` }]);
  const r = runTsx(dir, path.basename(file));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "[Vega-Lite chart]\n[image: cells-1.png]\n'bar'\n");
  const png = fs.readFileSync(path.join(dir, "cells-1.png"));
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  assert.ok(png.readUInt32BE(16) > 50, "a real image (its width)");
});

test("a notebook with a malformed cell: one line naming the file, the cell and the field; exit code 2", (t) => {
  const dir = scratch(t, "export-bad");
  const file = writeNotebookFile(dir, "bad.ipynb", [{ code: "1" }, { code: "2" }]);
  const nb = JSON.parse(fs.readFileSync(file, "utf8"));
  nb.cells[1].source = 42;
  fs.writeFileSync(file, JSON.stringify(nb));
  const r = loralab(["export", file, "--to", "ts"]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, `loralab export: ${file}: cell 2: source: expected a string or a list of strings, got 42\n`);
  assert.equal(fs.existsSync(path.join(dir, "bad.ts")), false, "nothing is written");
});

test("a notebook with a malformed output: the error names the cell and the output's field", (t) => {
  const dir = scratch(t, "export-bad");
  const file = writeNotebookFile(dir, "bad.ipynb", [
    { markdown: "x" },
    { code: "1", outputs: [{ output_type: "stream", name: "stdlog", text: "hi" }] },
  ]);
  const r = loralab(["export", file, "--to", "html"]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, `loralab export: ${file}: cell 2: outputs[0].name: expected one of "stdout" or "stderr", got "stdlog"\n`);
});

test("a file that is not a notebook, and a bad --to, are one-line errors", (t) => {
  const dir = scratch(t, "export-bad");
  const file = path.join(dir, "x.ipynb");
  fs.writeFileSync(file, "{ not json");
  const r = loralab(["export", file, "--to", "ts"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^loralab export: .*x\.ipynb: not a notebook: invalid JSON \(.+\)\n$/);
  const to = loralab(["export", path.join(NOTEBOOKS, notebooks[0]!), "--to", "pdf"]);
  assert.equal(to.status, 2);
  assert.equal(to.stderr, 'loralab export: --to: expected one of "ts" or "html", got "pdf"\n');
});

test("--to html: stderr, errors, markdown, highlighted code and HTML tables", { skip: chromiumMissing, timeout: 120_000 }, async (t) => {
  const dir = scratch(t, "export-html");
  const file = writeNotebookFile(dir, "outputs.ipynb", [
    { markdown: "# Outputs\n\n| a | b |\n|---|---|\n| 1 | 2 |" },
    {
      code: 'const s = `tpl ${1}`; // note\nconsole.error("careful")',
      outputs: [
        { output_type: "stream", name: "stdout", text: ["line 1\n", "line 2\n"] },
        { output_type: "stream", name: "stderr", text: "careful <now>\n" },
      ],
    },
    {
      code: "throw new Error('boom')",
      outputs: [{ output_type: "error", ename: "Error", evalue: "boom", traceback: ["\u001b[31mError\u001b[0m: boom", "    at cell 3:1"] }],
    },
    {
      code: "table",
      outputs: [
        {
          output_type: "execute_result",
          execution_count: 4,
          metadata: {},
          data: { "text/html": "<table><tr><th>r</th></tr><tr><td>8</td></tr></table>", "text/plain": "r 8" },
        },
      ],
    },
  ]);
  const html = exportTo(file, "html", dir);
  const { page, problems } = await openPage(t, html);
  assert.equal(await page.locator("section.markdown table td").count(), 2, "markdown tables render");
  assert.equal(await page.locator("pre.stdout").innerText(), "line 1\nline 2\n");
  assert.equal(await page.locator("pre.stderr").innerText(), "careful <now>\n");
  assert.equal(await page.locator("pre.error").innerText(), "Error: boom\n    at cell 3:1", "the traceback, terminal colours removed");
  assert.equal(await page.locator(".output.html table td").innerText(), "8");
  assert.deepEqual(await page.locator("pre.code span.c").allInnerTexts(), ["// note"]);
  assert.ok((await page.locator("pre.code span.s").allInnerTexts()).includes('"careful"'));
  assert.equal(await page.locator("[data-chart]").count(), 0);
  assert.equal(await page.locator("script").count(), 0, "a page without charts needs no script");
  assert.deepEqual(problems, []);
});

const jupyterMissing =
  fs.existsSync("/usr/bin/jupyter-nbconvert") && spawnSync("/usr/bin/python3", ["-c", "import nbclient"]).status === 0
    ? false
    : "needs Debian's jupyter-nbconvert and python3-nbclient (CI installs them)";

test(
  'in the loralab kernel, display imported from "loralab" shows through the kernel (rich output, chart PNG)',
  { skip: jupyterMissing, timeout: 300_000 },
  (t) => {
    const dir = scratch(t, "export-kernel");
    const prefix = path.join(dir, "prefix");
    const install = loralab(["kernel", "install", "--prefix", prefix, "--name", "loralab-export-test"]);
    assert.equal(install.status, 0, install.stderr);
    const spec = {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      data: { values: [{ a: 1 }] },
      mark: "bar",
      encoding: { y: { field: "a", type: "quantitative" } },
    };
    const file = writeNotebookFile(dir, "kernel.ipynb", [
      {
        code: `import { display as show } from "loralab";\nshow.html("<b>bold</b>");\nshow({ a: [1, 2] });\nshow.vegalite(${JSON.stringify(spec)});`,
      },
    ]);
    const run = spawnSync(
      "/usr/bin/jupyter",
      ["nbconvert", "--to", "notebook", "--execute", "--inplace", "--ExecutePreprocessor.kernel_name=loralab-export-test", file],
      {
        cwd: dir,
        encoding: "utf8",
        timeout: 280_000,
        env: {
          ...process.env,
          JUPYTER_PATH: path.join(prefix, "share", "jupyter"),
          JUPYTER_RUNTIME_DIR: path.join(dir, "rt"),
          PYTHONWARNINGS: "ignore",
        },
      },
    );
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-3000));
    const outputs = (
      JSON.parse(fs.readFileSync(file, "utf8")) as { cells: { outputs: { output_type: string; data?: Record<string, unknown> }[] }[] }
    ).cells[0]!.outputs;
    assert.deepEqual(
      outputs.map((o) => o.output_type),
      ["display_data", "display_data", "display_data"],
      "three displays, nothing on stdout",
    );
    const text = (i: number, mime: string) => ([] as unknown[]).concat(outputs[i]!.data![mime]).join("");
    assert.equal(text(0, "text/html"), "<b>bold</b>");
    assert.equal(text(1, "text/plain"), "{ a: [ 1, 2 ] }");
    assert.deepEqual(outputs[2]!.data!["application/vnd.vegalite.v5+json"], spec);
    assert.match(text(2, "image/png"), /^iVBORw0KGgo/, "the kernel added the chart's PNG");
  },
);
