/**
 * Models that ship inside the loralab package (models/<name>/), so that a fresh `npm install` can run
 * everything offline. `--model tiny-moby` (CLI) and `model("tiny-moby")` (DSL) reach them through
 * resolveModel() (./reference.ts), which tries a local directory first, then these names, then the Hugging Face hub.
 */
import * as path from "node:path";
import { packageRoot } from "../core/package.js";

/** Names of the packaged models; see models/<name>/README.md for each one's model card. */
export const SHIPPED_MODELS = ["tiny-moby"] as const;
export type ShippedModelName = (typeof SHIPPED_MODELS)[number];

/** The model `loralab quickstart` (npm start) uses when none is given. */
export const DEFAULT_SHIPPED_MODEL: ShippedModelName = "tiny-moby";

export function isShippedModel(name: string): name is ShippedModelName {
  return (SHIPPED_MODELS as readonly string[]).includes(name);
}

/** The directory of a packaged model (whether or not it exists on disk). */
export function shippedModelDir(name: ShippedModelName): string {
  return path.join(packageRoot(), "models", name);
}
