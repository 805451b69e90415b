/** Reading a whole text file as UTF-8, with errors that say `file: …` or `file:line: invalid UTF-8`. */
import * as fs from "node:fs";
import { UserError } from "../core/errors.js";

/** The file's bytes; a missing file or a directory is a UserError naming the file. */
export function readBytes(file: string, expected = "a data file"): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === "ENOENT" ? "file not found" : code === "EISDIR" ? `is a directory, expected ${expected}` : (e as Error).message;
    throw new UserError(`${file}: ${what}`);
  }
}

/** Strict UTF-8 (no silent U+FFFD); the error names the first line with a bad byte sequence. A leading BOM is dropped. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  try {
    return decoder.decode(bytes); // TextDecoder drops a leading BOM by default
  } catch {
    // A multi-byte sequence never contains 0x0a, so decoding line by line finds the culprit exactly.
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end === -1) end = bytes.length;
      try {
        decoder.decode(bytes.subarray(start, end));
      } catch {
        throw new UserError(`${file}:${line}: invalid UTF-8`);
      }
      start = end + 1;
    }
    throw new UserError(`${file}: invalid UTF-8`);
  }
}

export function readUtf8(file: string, expected?: string): string {
  return decodeUtf8(readBytes(file, expected), file);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A JS string that cannot be written as UTF-8 (it holds a lone surrogate, e.g. from a bad "\ud800" escape). */
export function isIllFormed(s: string): boolean {
  return LONE_SURROGATE.test(s);
}
