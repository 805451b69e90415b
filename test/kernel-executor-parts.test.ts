/**
 * Parts of the kernel's executor, checked on their own: source maps, the stack a user reads, declarations
 * without long literals, the DSL's export names, and a table with a chart split in two outputs.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type * as TS from "@tslab/typescript-for-tslab";
import { splitChart } from "../kernel/rich-display.js";
import { widenLongLiterals } from "../kernel/executor/declarations.js";
import { exportedNames, mentionsAny } from "../kernel/executor/dsl-globals.js";
import { chain, decodeVlq, SourceMap, takeInlineMap } from "../kernel/executor/source-map.js";
import { readableFrames, registerCell } from "../kernel/executor/stack.js";
import { REPO, tempDir } from "./helpers/paths.js";

const ts = createRequire(import.meta.url)("@tslab/typescript-for-tslab") as typeof TS;

test("base64 VLQ: single digits, continuation bits and signs", () => {
  assert.deepEqual(decodeVlq("AAAA"), [0, 0, 0, 0]);
  assert.deepEqual(decodeVlq("AACA"), [0, 0, 1, 0]);
  assert.deepEqual(decodeVlq("D"), [-1]);
  assert.deepEqual(decodeVlq("gB"), [16]);
  assert.deepEqual(decodeVlq("2HwrB"), [123, 696]);
  assert.throws(() => decodeVlq("A!"), /invalid base64 VLQ/);
});

test("source maps: TypeScript's own map of a compile, chained through a second compile, finds the line written", () => {
  const source = "const a = 1;\n\n\nfunction f(): number {\n  throw new Error('x');\n}\n";
  const first = ts.transpileModule(source, { compilerOptions: { inlineSourceMap: true, module: ts.ModuleKind.ESNext } });
  const { code, map } = takeInlineMap(first.outputText);
  assert.ok(map && !code.includes("sourceMappingURL"));
  const second = ts.transpileModule(code, { compilerOptions: { sourceMap: true, module: ts.ModuleKind.CommonJS } });
  const both = chain(SourceMap.fromJson(second.sourceMapText!), map);
  const lines = second.outputText.split("\n");
  const throwLine = lines.findIndex((l) => l.includes("throw new Error"));
  assert.ok(throwLine >= 0);
  assert.deepEqual(both.original({ line: throwLine, column: lines[throwLine]!.indexOf("throw") }), { line: 4, column: 2 });
});

test("stack frames: cells by In[count] and line; loralab and its packages folded; the kernel's own left out", () => {
  const root = tempDir("stack-root");
  const map = { original: ({ line }: { line: number; column: number }) => ({ line: line + 1, column: 4 }) };
  const file = registerCell({ id: 9001, count: 7, code: "x\ny\n  boom();\n" }, map, 10);
  const stack = [
    "Error: boom",
    `    at inner (${root}/node_modules/@tensorflow/tfjs-core/dist/a.js:1:1)`,
    `    at outer (${root}/node_modules/@tensorflow/tfjs-core/dist/b.js:1:1)`,
    `    at step (${root}/dist/src/train/trainer.js:1:1)`,
    `    at Run.train (${root}/dist/dsl/run.js:1:1)`,
    `    at ${file}:3:5`,
    `    at Object.execute (${root}/node_modules/tslab/dist/executor.js:1:1)`,
    "    at node:internal/process/task_queues:95:5",
    "    at userCode (/home/me/helpers.js:3:3)",
  ].join("\n");
  assert.deepEqual(readableFrames(stack, { hidden: [`${root}/node_modules/tslab`], root }), [
    "    at outer (@tensorflow/tfjs-core: 2 frames)",
    "    at Run.train (loralab: 2 frames)",
    "    at Cell In[7], line 3:5",
    "        boom();",
    "    at userCode (/home/me/helpers.js:3:3)",
  ]);
});

test("declarations: string literals longer than 1,000 characters become string; short ones keep their type", () => {
  const long = "x".repeat(2000);
  const decl = `declare const big = "${long}";\ndeclare const small = "hi";\ndeclare const o: {\n    a: "${long}";\n    b: "b";\n};\n`;
  assert.equal(
    widenLongLiterals(ts, decl),
    'declare const big: string;\ndeclare const small = "hi";\ndeclare const o: {\n    a: string;\n    b: "b";\n};\n',
  );
  assert.equal(widenLongLiterals(ts, "declare const s = 'short';"), "declare const s = 'short';");
});

test("DSL globals: value exports read from the entry's source (following export *), mentions found by word", () => {
  const dir = tempDir("exports");
  fs.writeFileSync(
    path.join(dir, "index.js"),
    'export { a, b as c } from "./x.js";\nexport * from "./more.js";\nexport const d = 1;\nexport function e() {}\n',
  );
  fs.writeFileSync(path.join(dir, "more.js"), "export class F {}\nexport default 1;\n");
  assert.deepEqual(exportedNames(ts, path.join(dir, "index.js")).sort(), ["F", "a", "c", "d", "e"]);
  const dsl = exportedNames(ts, path.join(REPO, "dist", "dsl", "index.js"));
  for (const name of ["model", "dataset", "sweep", "compare", "lastRun", "UserError"]) assert.ok(dsl.includes(name), name);
  assert.equal(mentionsAny(["model"], "const x = models;"), false);
  assert.equal(mentionsAny(["model"], "await model('tiny-moby')"), true);
  assert.equal(mentionsAny(["model"], "mod", 3), true, "completing a prefix of a name");
});

test("a bundle with HTML and a chart becomes two: the table with its text, the chart with its PNG", () => {
  const chart = { mark: "line" };
  assert.deepEqual(
    splitChart({ "text/html": "<table/>", "text/plain": "t", "application/vnd.vegalite.v5+json": chart, "image/png": "iVBO" }),
    [
      { "text/html": "<table/>", "text/plain": "t" },
      { "application/vnd.vegalite.v5+json": chart, "image/png": "iVBO", "text/plain": "[Vega-Lite chart]" },
    ],
  );
  const single = { "application/vnd.vegalite.v5+json": chart, "image/png": "iVBO", "text/plain": "c" };
  assert.deepEqual(splitChart(single), [single]);
});
