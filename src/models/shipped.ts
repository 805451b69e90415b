/**
 * Models that ship inside the loralab package (models/<name>/), so that a fresh `npm install` can run
 * everything offline. `--model tiny-moby` (CLI) and `model("tiny-moby")` (DSL) reach them through
 * resolveModel(), which tries a local directory first, then these names, then the Hugging Face hub.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** Names of the packaged models; see models/<name>/README.md for each one's model card. */
export const SHIPPED_MODELS = ["tiny-moby"] as const;
export type ShippedModelName = (typeof SHIPPED_MODELS)[number];

/** The model `loralab quickstart` (npm start) uses when none is given. */
export const DEFAULT_SHIPPED_MODEL: ShippedModelName = "tiny-moby";

let root: string | undefined;

/**
 * The loralab package root: the nearest directory above this file with a package.json named "loralab"
 * (this file runs from src/models/ under tsx and from dist/src/models/ when compiled).
 */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, "utf8")) as { name?: unknown }).name === "loralab") return (root = dir);
      } catch {
        // not ours; keep looking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the loralab package root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export function isShippedModel(name: string): name is ShippedModelName {
  return (SHIPPED_MODELS as readonly string[]).includes(name);
}

/** The directory of a packaged model (whether or not it exists on disk). */
export function shippedModelDir(name: ShippedModelName): string {
  return path.join(packageRoot(), "models", name);
}
