/**
 * loralab's own package: where it is installed and which version it is. Code runs from src/ (under tsx)
 * and from dist/src/ (compiled), at different depths, so the root is found by walking up to the
 * package.json named "loralab".
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

interface PackageJson {
  name?: unknown;
  version?: unknown;
}

let found: { root: string; version: string } | undefined;

function locate(): { root: string; version: string } {
  if (found) return found;
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    let pkg: PackageJson | undefined;
    try {
      pkg = JSON.parse(fs.readFileSync(file, "utf8")) as PackageJson;
    } catch {
      // no package.json here, or not JSON: not ours, keep looking
    }
    if (pkg?.name === "loralab") return (found = { root: dir, version: typeof pkg.version === "string" ? pkg.version : "0.0.0" });
    if (path.dirname(dir) === dir) throw new Error(`cannot find loralab's package.json above ${start}`);
  }
}

/** The folder holding loralab's package.json (models/, bin/ and dist/ are below it). */
export function packageRoot(): string {
  return locate().root;
}

export function packageVersion(): string {
  return locate().version;
}
