/**
 * Jupyter notebooks (nbformat 4) as files: the types, reading with validation, atomic writing.
 *
 * Reading checks the structure everything downstream relies on (cell types, sources, outputs) and names the
 * file, the cell (1-based, as a reader counts them) and the field in its one-line error:
 * `quickstart.ipynb: cell 4: outputs[0].output_type: expected one of "stream", …, got "bogus"`.
 * Fields that nothing here reads (metadata contents, attachments) are kept as they are, unchecked.
 */
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { check, Fields, invalid, listOf, nonNegativeInt, nullable, oneOf, string, type Check } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";

/** nbformat's multiline strings: one string, or a list of lines to be joined. */
export type MultilineText = string | string[];

/** MIME type → data: text (possibly multiline) for text types, any JSON value for +json types. */
export type OutputData = Record<string, unknown>;

export type Output =
  | { output_type: "stream"; name: "stdout" | "stderr"; text: MultilineText }
  | { output_type: "display_data"; data: OutputData; metadata: Record<string, unknown>; transient?: unknown }
  | { output_type: "execute_result"; data: OutputData; metadata: Record<string, unknown>; execution_count: number | null }
  | { output_type: "error"; ename: string; evalue: string; traceback: string[] };

interface CellBase {
  id?: string;
  metadata: Record<string, unknown>;
  source: MultilineText;
}
export interface CodeCell extends CellBase {
  cell_type: "code";
  execution_count: number | null;
  outputs: Output[];
}
export interface MarkdownCell extends CellBase {
  cell_type: "markdown";
  attachments?: Record<string, unknown>;
}
export interface RawCell extends CellBase {
  cell_type: "raw";
  attachments?: Record<string, unknown>;
}
export type Cell = CodeCell | MarkdownCell | RawCell;

export interface Notebook {
  nbformat: 4;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: Cell[];
}

/** The text of a multiline field. */
export function joinText(text: MultilineText): string {
  return Array.isArray(text) ? text.join("") : text;
}

/** A cell's source as one string. */
export function cellSource(cell: Cell): string {
  return joinText(cell.source);
}

const multiline: Check<MultilineText> = check("a string or a list of strings", (v) => string.accepts(v) || listOf(string).accepts(v));
const object: Check<Record<string, unknown>> = check("a JSON object", (v) => typeof v === "object" && v !== null && !Array.isArray(v));
const objectList: Check<unknown[]> = check("a list", Array.isArray);

/** Reads and validates a notebook file. */
export async function readNotebook(file: string): Promise<Notebook> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new UserError(`${file}: cannot read the notebook (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseNotebook(text, file);
}

/** Parses and validates a notebook's JSON text; `where` (usually the file name) starts every error message. */
export function parseNotebook(text: string, where: string): Notebook {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: not a notebook: invalid JSON (${(e as Error).message})`);
  }
  const fields = new Fields(where, Fields.of(`${where}: not a notebook`, raw).raw);
  fields.required("nbformat", oneOf(4));
  const cells = fields.required("cells", objectList);
  return {
    nbformat: 4,
    nbformat_minor: fields.optional("nbformat_minor", nonNegativeInt, 0),
    metadata: fields.optional("metadata", object, {}),
    cells: cells.map((c, i) => parseCell(c, `${where}: cell ${i + 1}`)),
  };
}

function parseCell(raw: unknown, where: string): Cell {
  const f = Fields.of(where, raw);
  const cellType = f.required("cell_type", oneOf("code", "markdown", "raw"));
  const base: CellBase = {
    ...(f.has("id") ? { id: f.required("id", string) } : {}),
    metadata: f.optional("metadata", object, {}),
    source: f.required("source", multiline),
  };
  if (cellType !== "code") {
    const attachments = f.optional("attachments", object, undefined);
    return { cell_type: cellType, ...base, ...(attachments ? { attachments } : {}) };
  }
  const outputs = f.optional("outputs", objectList, []);
  return {
    cell_type: "code",
    ...base,
    execution_count: f.optional("execution_count", nullable(nonNegativeInt), null),
    outputs: outputs.map((o, i) => parseOutput(o, where, `outputs[${i}]`)),
  };
}

function parseOutput(raw: unknown, cellWhere: string, field: string): Output {
  if (!object.accepts(raw)) throw invalid(cellWhere, field, "a JSON object", raw);
  const at = (name: string) => `${field}.${name}`;
  const get = <T>(name: string, rule: Check<T>, fallback?: T): T => {
    const value = raw[name];
    if (value === undefined && fallback !== undefined) return fallback;
    if (!rule.accepts(value)) throw invalid(cellWhere, at(name), rule.expected, value);
    return value;
  };
  const type = get("output_type", oneOf("stream", "display_data", "execute_result", "error"));
  switch (type) {
    case "stream":
      return { output_type: type, name: get("name", oneOf("stdout", "stderr")), text: get("text", multiline) };
    case "error":
      return { output_type: type, ename: get("ename", string), evalue: get("evalue", string), traceback: get("traceback", listOf(string)) };
    case "display_data":
    case "execute_result": {
      const data = get("data", object);
      for (const [mime, value] of Object.entries(data)) {
        if (!mime.endsWith("json") && !multiline.accepts(value)) throw invalid(cellWhere, at(`data["${mime}"]`), multiline.expected, value);
      }
      const metadata = get("metadata", object, {});
      const transient = raw.transient !== undefined ? { transient: raw.transient } : {};
      return type === "display_data"
        ? { output_type: type, data, metadata, ...transient }
        : { output_type: type, data, metadata, execution_count: get("execution_count", nullable(nonNegativeInt), null) };
    }
  }
}

/**
 * Writes a notebook as Jupyter does (keys sorted, one-space indent, trailing newline), atomically: a reader
 * (or a crash) never sees half a notebook.
 */
export async function writeNotebook(file: string, notebook: Notebook): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(sortKeys(notebook), null, 1)}\n`);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
  );
}

/** A notebook's name without folder and extension: "quickstart" for notebooks/quickstart.ipynb. */
export function notebookName(file: string): string {
  return basename(file).replace(/\.ipynb$/i, "");
}
