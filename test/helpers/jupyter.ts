/** Jupyter for the kernel tests: the loralab kernelspec installed into a temporary prefix. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { CLI, tempDir } from "./paths.js";

/** Installs the kernelspec as `name`; returns an environment in which Jupyter finds it and writes only to temporary folders. */
export function jupyterEnv(name: string): NodeJS.ProcessEnv {
  const prefix = tempDir(`${name}-spec`);
  const install = spawnSync(process.execPath, [CLI, "kernel", "install", "--prefix", prefix, "--name", name], { encoding: "utf8" });
  assert.equal(install.status, 0, install.stderr);
  return {
    ...process.env,
    JUPYTER_PATH: path.join(prefix, "share", "jupyter"),
    JUPYTER_RUNTIME_DIR: tempDir(`${name}-runtime`),
    PYTHONWARNINGS: "ignore",
  };
}

/** An nbformat 4 notebook of code cells, for the kernelspec `name`. */
export function notebookOf(name: string, sources: string[]): object {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name, display_name: "loralab", language: "typescript" } },
    cells: sources.map((source) => ({ cell_type: "code", metadata: {}, execution_count: null, outputs: [], source })),
  };
}
