/**
 * What a model reference means — `--model REF` on the command line, `model(REF)` in the DSL, `loadModel(REF)`
 * in code — tried in this order: an existing local directory, the name of a model shipped with loralab
 * ("tiny-moby"), a Hugging Face hub id (through the shared HF cache, see src/checkpoint/hub/). A directory wins
 * over a hub id of the same shape, as in transformers.
 */
import { join, resolve } from "node:path";
import { UserError } from "../core/errors.js";
import { settleDirectory } from "../core/files.js";
import { expandHome, pathKind } from "../core/paths.js";
import { hubSnapshot, isHubModelId, type HubSnapshotOptions } from "../checkpoint/hub/snapshot.js";
import { isShippedModel, shippedModelDir } from "./shipped.js";

/** Options for hub ids (revision, offline, timeoutMs, extra files); local directories and shipped models ignore them. */
export type ModelReferenceOptions = HubSnapshotOptions;

/** True for refs that can only be a filesystem path (never a hub id). */
function looksLikePath(ref: string): boolean {
  return (
    ref === "." ||
    ref === ".." ||
    /^\.{1,2}[/\\]/.test(ref) ||
    ref.startsWith("/") ||
    ref.startsWith("~") ||
    ref.includes("\\") ||
    /^[A-Za-z]:/.test(ref) ||
    ref.split("/").length > 2
  );
}

/**
 * Resolve `ref` to an absolute local directory holding the model.
 *
 * - An existing directory (absolute, relative to cwd, or "~/…") is returned as is (absolute).
 * - A path-like ref that does not exist → UserError "model directory not found: …".
 * - The name of a shipped model → its directory in the package.
 * - A hub id ("org/name" or "name") → its snapshot in the Hugging Face cache, downloaded if needed.
 */
export async function resolveModel(ref: string, options: ModelReferenceOptions = {}): Promise<string> {
  const trimmed = ref.trim();
  if (trimmed === "") throw new UserError("model reference is empty: pass a local directory or a Hugging Face id");

  const local = resolve(expandHome(trimmed));
  settleDirectory(local); // a save (merge --out, saveMerged) killed between its two renames left the model beside its place
  const kind = await pathKind(local);
  if (kind === "dir") return local;
  if (looksLikePath(trimmed)) {
    if (kind !== undefined) throw new UserError(`model path is not a directory: ${local}`);
    throw new UserError(`model directory not found: ${local}`);
  }
  if (isShippedModel(trimmed)) {
    const dir = shippedModelDir(trimmed);
    if ((await pathKind(join(dir, "config.json"))) !== "file") {
      throw new UserError(
        `the shipped model "${trimmed}" is missing from the loralab package (${dir} has no config.json); reinstall loralab`,
      );
    }
    return dir;
  }
  if (!isHubModelId(trimmed)) {
    throw new UserError(`"${trimmed}" is neither an existing directory nor a valid Hugging Face model id (expected "org/name")`);
  }
  return hubSnapshot(trimmed, options);
}
