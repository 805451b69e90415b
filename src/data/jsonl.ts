/** JSON Lines, read with errors that point at `file:line`. */
import * as fs from "node:fs";
import { UserError } from "../errors.js";

export interface JsonlRow {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

/** Every non-blank line must be a JSON object. */
export function readJsonl(file: string): JsonlRow[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory, expected a .jsonl file" : (e as Error).message}`);
  }
  const decoder = new TextDecoder("utf-8", { fatal: true }); // invalid UTF-8 is an error, not silent U+FFFD
  const rows: JsonlRow[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    const where = `${file}:${line}`;
    let raw: string;
    try {
      raw = decoder.decode(bytes.subarray(start, end));
    } catch {
      throw new UserError(`${where}: invalid UTF-8`);
    }
    start = end + 1;
    if (raw.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new UserError(`${where}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new UserError(`${where}: expected a JSON object per line, got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`);
    }
    rows.push({ line, value: value as Record<string, unknown> });
  }
  if (rows.length === 0) throw new UserError(`${file}: no rows (the file is empty)`);
  return rows;
}
