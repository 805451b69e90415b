/**
 * Configuration files holding one JSON object (config.json, tokenizer_config.json, an index, …), read into
 * {@link Fields} so that every error names the file: `<file>: invalid JSON: …`, `<file>: expected a JSON object`.
 */
import * as fs from "node:fs";
import { Fields } from "./check.js";
import { UserError } from "./errors.js";

/** The object in `file`, or undefined when there is no such file. */
export function readOptionalJsonObject(file: string): Fields | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "EISDIR") throw new UserError(`${file}: is a directory; expected a JSON file`);
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return Fields.of(file, raw);
}

/** The object in `file`; a missing file is a UserError that says why it is needed (`why`). */
export function readJsonObject(file: string, why: string): Fields {
  const fields = readOptionalJsonObject(file);
  if (fields === undefined) throw new UserError(`${file}: not found (${why})`);
  return fields;
}
