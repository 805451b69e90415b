/**
 * The one-way map of the README's Layout section, checked on the code: every import goes to the same layer or a
 * lower one, the kernel and the DSL meet only through src/runtime/, and no two files import each other, directly
 * or around a loop. Imports are read with TypeScript's own scanner (static, dynamic and type-only alike).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(import.meta.dirname, "..");

/** Layers from the ground up; a file belongs to the first entry whose folder holds it. */
const LAYERS: { layer: number; name: string; folders: string[] }[] = [
  { layer: 0, name: "ground", folders: ["src/core", "src/runtime"] },
  {
    layer: 1,
    name: "storage and compute",
    folders: ["src/backend", "src/nn", "src/checkpoint", "src/charts", "src/quant", "src/notebook"],
  },
  { layer: 2, name: "models and data", folders: ["src/models", "src/data"] },
  { layer: 3, name: "lora", folders: ["src/lora"] },
  { layer: 4, name: "train and metrics", folders: ["src/train", "src/metrics", "src/study"] },
  { layer: 5, name: "faces", folders: ["dsl", "src/cli", "kernel", "src/export"] },
  { layer: 6, name: "tools", folders: ["scripts", "bench"] },
];

/** Pairs of folders in one layer that must not import each other: the kernel reaches the DSL only through src/runtime. */
const APART: [string, string][] = [
  ["kernel", "dsl"],
  ["dsl", "kernel"],
  ["kernel", "src/cli"],
  ["dsl", "src/cli"],
];

function layerOf(file: string): { layer: number; name: string; folder: string } {
  for (const l of LAYERS) {
    const folder = l.folders.find((f) => file === f || file.startsWith(`${f}/`));
    if (folder) return { layer: l.layer, name: l.name, folder };
  }
  throw new Error(`${file}: in no layer of the map (add its folder to LAYERS and to the README's Layout)`);
}

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.ts$/.test(entry.name) && !/\.d\.ts$/.test(entry.name)) out.push(rel);
    }
  };
  for (const top of ["src", "dsl", "kernel", "scripts", "bench"]) if (fs.existsSync(path.join(ROOT, top))) walk(top);
  return out.sort();
}

/** The repository files `file` imports (relative specifiers only; packages are outside the map). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(fs.readFileSync(path.join(ROOT, file), "utf8"), true, true);
  const out = new Set<string>();
  for (const { fileName } of info.importedFiles) {
    if (!fileName.startsWith(".")) continue;
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), fileName)).replace(/\.js$/, ".ts");
    if (fs.existsSync(path.join(ROOT, target))) out.add(target);
  }
  return [...out];
}

const files = sourceFiles();
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test("every source file is in a layer of the map", () => {
  for (const f of files) layerOf(f);
});

test("no import runs from a lower layer to a higher one", () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    const a = layerOf(from);
    for (const to of targets) {
      const b = layerOf(to);
      if (b.layer > a.layer) wrong.push(`${from} (${a.name}) imports ${to} (${b.name})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("the kernel and the DSL meet only through src/runtime", () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const pair = APART.find(([x, y]) => layerOf(from).folder === x && layerOf(to).folder === y);
      if (pair) wrong.push(`${from} imports ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("no import cycle between files", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, "open");
    stack.push(f);
    for (const g of graph.get(f) ?? []) {
      if (state.get(g) === "open") cycles.push([...stack.slice(stack.indexOf(g)), g].join(" → "));
      else if (!state.has(g)) visit(g);
    }
    stack.pop();
    state.set(f, "done");
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test("no source file is over 400 lines", () => {
  const long = files
    .map((f) => [f, fs.readFileSync(path.join(ROOT, f), "utf8").split("\n").length] as const)
    .filter(([, n]) => n > 400)
    .map(([f, n]) => `${f}: ${n} lines`);
  assert.deepEqual(long, []);
});
