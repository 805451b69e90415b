/** JSON Lines, read with errors that point at `file:line`. */
import { UserError } from "../core/errors.js";
import { readUtf8 } from "./text-file.js";

export interface JsonlRow {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

/** Every non-blank line must be a JSON object. */
export function readJsonl(file: string): JsonlRow[] {
  const text = readUtf8(file, "a .jsonl file"); // strict UTF-8: a bad byte is `file:line: invalid UTF-8`
  const rows: JsonlRow[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim() === "") return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new UserError(`${where}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new UserError(`${where}: expected a JSON object per line, got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`);
    }
    rows.push({ line: i + 1, value: value as Record<string, unknown> });
  });
  if (rows.length === 0) throw new UserError(`${file}: no rows (the file is empty)`);
  return rows;
}
