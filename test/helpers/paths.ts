import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The real, externally trained checkpoint beside the checkout (see DEVELOPERS.md). */
export const STORIES = path.resolve(REPO, "../shared/models/stories260K");
export const CLI = path.join(REPO, "bin/loralab.js");

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `loralab-${prefix}-`));
}
