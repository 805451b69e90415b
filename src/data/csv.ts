/**
 * CSV/TSV through arquero's parser, with each row's line number kept for error messages.
 *
 * arquero parses the values; a small scan of the same text (same quoting rules: a field is quoted only when it
 * starts with `"`, `""` escapes a quote, quoted fields may span lines) finds where each record starts, skips
 * blank lines and rejects rows whose number of values differs from the header's — arquero would silently drop
 * the extra values of a row with an unquoted delimiter inside its text. Cells stay strings (no type guessing:
 * "007" stays "007", "2021-01-01" is not a Date); an empty cell is "".
 */
import { fromCSV } from "arquero";
import { invalid } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { readUtf8 } from "./text-file.js";

export interface CsvRow {
  /** 1-based line where the record starts (a quoted value may continue on later lines). */
  line: number;
  value: Record<string, string>;
}

interface RecordInfo {
  line: number;
  fields: number;
  blank: boolean;
}

/** Where each record starts and how many values it has; throws on an unterminated or malformed quote. */
function scanRecords(text: string, delimiter: string, file: string): RecordInfo[] {
  const records: RecordInfo[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  const newline = (): boolean => {
    // consumes a line break at i (\n, \r\n or a lone \r, as arquero does)
    const c = text[i];
    if (c === "\n") i++;
    else if (c === "\r") i += text[i + 1] === "\n" ? 2 : 1;
    else return false;
    line++;
    return true;
  };
  while (i < n) {
    const record: RecordInfo = { line, fields: 1, blank: text[i] === "\n" || text[i] === "\r" };
    records.push(record);
    for (;;) {
      if (text[i] === '"') {
        const quoteLine = line;
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          if (q === -1) throw new UserError(`${file}:${quoteLine}: unterminated quoted value (a " is never closed)`);
          for (let k = j; k < q; k++) if (text[k] === "\n" || (text[k] === "\r" && text[k + 1] !== "\n")) line++;
          if (text[q + 1] === '"') {
            j = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        if (i >= n || newline()) break;
        if (text[i] === delimiter) {
          i++;
          record.fields++;
          continue;
        }
        throw new UserError(
          `${file}:${line}: malformed quoted value: a closing " must be followed by the delimiter or the end of the line`,
        );
      }
      while (i < n && text[i] !== delimiter && text[i] !== "\n" && text[i] !== "\r") i++;
      if (i >= n || newline()) break;
      i++; // the delimiter
      record.fields++;
    }
  }
  return records;
}

/** The header's column names, unquoted by the same rules (the scan has already rejected malformed quotes). */
function columnNames(text: string, delimiter: string): string[] {
  const names: string[] = [];
  let i = 0;
  for (;;) {
    let name = "";
    if (text[i] === '"') {
      // A quoted name ends at a lone quote; "" inside it is one quote.
      for (i++; i < text.length && !(text[i] === '"' && text[i + 1] !== '"'); i++) {
        name += text[i];
        if (text[i] === '"') i++;
      }
      i++;
    } else {
      while (i < text.length && text[i] !== delimiter && text[i] !== "\n" && text[i] !== "\r") name += text[i++];
    }
    names.push(name);
    if (text[i] !== delimiter) return names;
    i++;
  }
}

/** Parses delimited text (the header names the fields); `file` is only used in messages. */
export function parseDelimited(text: string, file: string, delimiter = ","): CsvRow[] {
  const records = scanRecords(text, delimiter, file);
  const header = records[0];
  if (!header || records.every((r) => r.blank)) throw new UserError(`${file}: no rows (the file is empty)`);
  if (header.blank) throw new UserError(`${file}:1: the first line must be the header (column names), but it is blank`);
  if (records.length - 1 === records.slice(1).filter((r) => r.blank).length) throw new UserError(`${file}: no rows (only a header)`);
  const headerNames = columnNames(text, delimiter);
  const dup = headerNames.find((name, k) => headerNames.indexOf(name) !== k);
  if (dup !== undefined) throw new UserError(`${file}:1: duplicate column name "${dup}"`);
  // arquero keeps columns in a plain object: "__proto__" or "toString" would replace or shadow its own properties.
  const reserved = headerNames.findIndex((name) => name in Object.prototype);
  if (reserved >= 0) {
    throw invalid(
      `${file}:1`,
      `column ${reserved + 1}`,
      "a name that is not a built-in property of JavaScript objects",
      headerNames[reserved],
    );
  }
  let table;
  try {
    table = fromCSV(text, { delimiter, autoType: false });
  } catch (e) {
    throw new UserError(`${file}: cannot parse: ${(e as Error).message}`);
  }
  const names = table.columnNames();
  if (names.length !== header.fields) {
    throw new Error(`internal: ${file}: arquero read ${names.length} columns but the header has ${header.fields}`);
  }
  const objects = table.objects() as Record<string, unknown>[];
  if (objects.length !== records.length - 1) {
    throw new Error(`internal: ${file}: arquero read ${objects.length} rows but the line scan found ${records.length - 1}`);
  }
  const rows: CsvRow[] = [];
  objects.forEach((obj, r) => {
    const rec = records[r + 1]!;
    if (rec.blank) return;
    if (rec.fields !== header.fields) {
      throw new UserError(
        `${file}:${rec.line}: ${rec.fields} value${rec.fields === 1 ? "" : "s"}, but the header has ${header.fields} columns (quote values that contain "${delimiter === "\t" ? "\\t" : delimiter}")`,
      );
    }
    const value: Record<string, string> = {};
    for (const name of names) {
      const v = obj[name];
      value[name] = v === null || v === undefined ? "" : String(v);
    }
    rows.push({ line: rec.line, value });
  });
  return rows;
}

/** Reads a CSV (or, with delimiter "\t", TSV) file: strict UTF-8, header row, one record per row. */
export function readDelimited(file: string, delimiter = ","): CsvRow[] {
  return parseDelimited(readUtf8(file, delimiter === "\t" ? "a .tsv file" : "a .csv file"), file, delimiter);
}
