/**
 * `loralab run` for tests: the real binary on real files, nbformat validation with Debian's python, and the
 * smoke parameters every example notebook runs with in tests (`-p smoke=true` when it has a `parameters` cell).
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readNotebook, writeNotebook } from "../../src/notebook/nbformat.js";
import { hasParametersCell, injectParameters, parseParameters } from "../../src/notebook/parameters.js";
import { CLI } from "./paths.js";

export const PYTHON = "/usr/bin/python3";
export const nbformatMissing =
  fs.existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import nbformat"]).status === 0
    ? false
    : "needs Debian's python3-nbformat (/usr/bin/python3 -c 'import nbformat'); CI installs it";

/** `loralab run ARGS` in `cwd`. */
export function loralabRun(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeout = 600_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, "run", ...args], { cwd, encoding: "utf8", timeout, env: { ...process.env, ...env } });
}

/** nbformat.validate on the file: undefined when valid, else the error. */
export function nbformatError(file: string): string | undefined {
  const r = spawnSync(PYTHON, ["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))", file], {
    encoding: "utf8",
  });
  return r.status === 0 ? undefined : r.stderr || `exit ${r.status}`;
}

/** The `-p` flags a smoke run of `file` takes: smoke=true when it has a cell tagged `parameters`. */
export async function smokeFlags(file: string): Promise<string[]> {
  return hasParametersCell(await readNotebook(file)) ? ["smoke=true"] : [];
}

/** Writes `file` with the smoke parameters injected (by the module `loralab run` uses) to `out`; returns out. */
export async function writeSmokeNotebook(file: string, out: string): Promise<string> {
  const flags = await smokeFlags(file);
  const { notebook } = injectParameters(await readNotebook(file), parseParameters(flags), file);
  await writeNotebook(out, notebook);
  return out;
}

export interface StoredNotebook {
  cells: {
    cell_type: string;
    source: string | string[];
    metadata: { tags?: string[] };
    execution_count?: number | null;
    outputs?: {
      output_type: string;
      name?: string;
      text?: string | string[];
      data?: Record<string, unknown>;
      ename?: string;
      evalue?: string;
      traceback?: string[];
    }[];
  }[];
}

export const readStored = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as StoredNotebook;

/** A notebook folder's file name for `name` in `dir`. */
export const inDir = (dir: string, name: string) => path.join(dir, name);
