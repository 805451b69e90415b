/**
 * dist/ must hold the current code for tests that run the built package (the kernelspec runs bin/loralab.js,
 * which imports dist/; the executor's watchdog thread runs as plain JavaScript): rebuild when a source is newer.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO } from "./paths.js";

function newestSource(dir: string): number {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .reduce((m, e) => Math.max(m, fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
}

export function ensureBuilt(): void {
  const built = path.join(REPO, "dist", "kernel", "handler.js");
  const source = Math.max(...["kernel", "src", "dsl"].map((d) => newestSource(path.join(REPO, d))));
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= source) return;
  const r = spawnSync(process.execPath, [path.join(REPO, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], {
    cwd: REPO,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `npm run build failed:\n${r.stdout}${r.stderr}`);
}
