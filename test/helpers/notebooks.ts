/**
 * Helpers for tests of notebook exports: small notebooks written from a list of cells, folders where an exported
 * script imports this checkout as "loralab", and the text results a stored notebook shows.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import type { TestContext } from "node:test";
import { REPO, tempDir } from "./paths.js";

export type CellSpec = { markdown: string } | { code: string; outputs?: unknown[]; execution_count?: number };

/** An nbformat 4.5 notebook for the loralab kernel holding `cells`. */
export function notebookJson(cells: CellSpec[]): Record<string, unknown> {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "loralab", display_name: "TypeScript (loralab)", language: "typescript" } },
    cells: cells.map((c, i) =>
      "markdown" in c
        ? { cell_type: "markdown", id: `c${i}`, metadata: {}, source: c.markdown }
        : {
            cell_type: "code",
            id: `c${i}`,
            metadata: {},
            execution_count: c.execution_count ?? i + 1,
            outputs: c.outputs ?? [],
            source: c.code,
          },
    ),
  };
}

/** A temp folder, removed after the test. */
export function scratch(t: TestContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder where `import … from "loralab"` resolves to this checkout (as after `npm install loralab`) and .ts files are ES modules. */
export function scriptFolder(t: TestContext): string {
  const dir = scratch(t, "export");
  fs.mkdirSync(path.join(dir, "node_modules"));
  fs.symlinkSync(REPO, path.join(dir, "node_modules", "loralab"), "dir");
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ private: true, type: "module" }));
  return dir;
}

export function writeNotebookFile(dir: string, name: string, cells: CellSpec[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(notebookJson(cells), null, 1));
  return file;
}

/** `tsc --noEmit` with the project's TypeScript, strict, on ES modules for Node. */
export function typeCheck(dir: string, files: string[]): SpawnSyncReturns<string> {
  const tsc = path.join(REPO, "node_modules/typescript/bin/tsc");
  const options = ["--noEmit", "--strict", "--module", "nodenext", "--target", "es2022", "--skipLibCheck"];
  const types = ["--types", "node", "--typeRoots", path.join(REPO, "node_modules/@types")];
  return spawnSync(process.execPath, [tsc, ...options, ...types, ...files], { cwd: dir, encoding: "utf8", timeout: 300_000 });
}

/** `tsx FILE` in `dir` (tsx from this checkout: what `npx tsx` runs). */
export function runTsx(dir: string, file: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const tsx = path.join(REPO, "node_modules/tsx/dist/cli.mjs");
  return spawnSync(process.execPath, [tsx, file], {
    cwd: dir,
    encoding: "utf8",
    timeout: 900_000,
    env: { ...process.env, LORALAB_RUNS_DIR: path.join(dir, "runs"), ...env },
  });
}

interface StoredOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
}

const joined = (t: unknown) => (Array.isArray(t) ? t.join("") : String(t));

/** Per code cell: the texts it stored as its result (execute_result) and on stdout; and whether its result holds a chart. */
export function storedResults(file: string): { texts: string[]; charts: number }[] {
  const nb = JSON.parse(fs.readFileSync(file, "utf8")) as { cells: { cell_type: string; outputs?: StoredOutput[] }[] };
  return nb.cells
    .filter((c) => c.cell_type === "code")
    .map((c) => {
      const outputs = c.outputs ?? [];
      const texts = outputs.flatMap((o) =>
        o.output_type === "execute_result" && o.data?.["text/plain"] !== undefined
          ? [joined(o.data["text/plain"])]
          : o.output_type === "stream" && o.name === "stdout"
            ? [joined(o.text).trimEnd()]
            : [],
      );
      const charts = outputs.filter((o) => o.output_type === "execute_result" && o.data?.["application/vnd.vegalite.v5+json"]).length;
      return { texts, charts };
    });
}

/** Table columns and fields whose values differ from run to run (clock times, the process's RSS, run ids); numbers elsewhere must match exactly. */
const VOLATILE_COLUMN = /^(wall_s|median_step_ms|step_ms|tokens_per_s|rss_MiB)$/;
const VOLATILE_LINE = /^(\s*id\s+)\S+$/;

/** `text` with its volatile values replaced by "…". */
export function maskVolatile(text: string): string {
  let volatile: boolean[] | undefined;
  return text
    .split("\n")
    .map((line) => {
      if (!line.startsWith("|")) {
        volatile = undefined;
        return line.replace(VOLATILE_LINE, "$1…");
      }
      const cells = line.split("|");
      if (!volatile) volatile = cells.map((c) => VOLATILE_COLUMN.test(c.trim()));
      else if (!/^[|:\s-]+$/.test(line)) return cells.map((c, i) => (volatile![i] ? "…" : c)).join("|");
      return line;
    })
    .join("\n");
}
