/**
 * Notebook parameters with papermill's semantics: `key=value` with the value parsed as JSON, else kept as a
 * string; the values go into a new code cell tagged `injected-parameters`, placed right after the cell tagged
 * `parameters` (replacing an injected cell left by an earlier run), or at the top, with a warning, when no cell
 * carries that tag. The cell is TypeScript, one `const` per parameter: a later cell may declare a name again in
 * the loralab kernel (and `loralab export --to ts` renames it there), so the injected values win.
 */
import { UserError } from "../core/errors.js";
import { cellSource, type Cell, type CodeCell, type Notebook } from "./nbformat.js";

export const PARAMETERS_TAG = "parameters";
export const INJECTED_TAG = "injected-parameters";

export type Parameters = Record<string, unknown>;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** One `-p key=value`: the value is JSON if it parses as JSON (`3`, `true`, `[1,2]`, `"x"`), else the text itself. */
export function parseParameter(text: string): [string, unknown] {
  const eq = text.indexOf("=");
  if (eq < 0) throw new UserError(`-p ${text}: expected key=value`);
  const key = text.slice(0, eq).trim();
  if (!IDENTIFIER.test(key)) throw new UserError(`-p ${text}: "${key}" is not a variable name`);
  const raw = text.slice(eq + 1);
  try {
    return [key, JSON.parse(raw)];
  } catch {
    return [key, raw];
  }
}

/** Every `-p key=value`, in order; a key given twice keeps its last value (as papermill). */
export function parseParameters(texts: string[]): Parameters {
  return Object.fromEntries(texts.map(parseParameter));
}

const tags = (cell: Cell): unknown[] => (Array.isArray(cell.metadata.tags) ? cell.metadata.tags : []);
export const hasTag = (cell: Cell, tag: string): boolean => tags(cell).includes(tag);

/** Whether the notebook has a cell tagged `parameters` (what smoke runs look for). */
export function hasParametersCell(notebook: Notebook): boolean {
  return notebook.cells.some((c) => c.cell_type === "code" && hasTag(c, PARAMETERS_TAG));
}

/** The source of the injected cell: one `const` per parameter, its value as a JSON literal. */
export function parametersSource(parameters: Parameters): string {
  const lines = Object.entries(parameters).map(([k, v]) => `const ${k} = ${JSON.stringify(v)};`);
  return ["// Parameters (injected by loralab run)", ...lines].join("\n");
}

export interface Injected {
  notebook: Notebook;
  /** The 0-based index of the injected cell. */
  index: number;
  /** Set when the notebook had no cell tagged `parameters`: the cell went to the top. */
  warning?: string;
}

/**
 * A copy of `notebook` with `parameters` injected (the input is not changed). With no parameters the copy is
 * returned as it is, and an earlier injected cell stays (papermill does the same).
 */
export function injectParameters(notebook: Notebook, parameters: Parameters, where = "the notebook"): Injected {
  const cells = [...notebook.cells];
  if (Object.keys(parameters).length === 0) return { notebook: { ...notebook, cells }, index: -1 };
  const old = cells.findIndex((c) => hasTag(c, INJECTED_TAG));
  const anchor = cells.findIndex((c) => c.cell_type === "code" && hasTag(c, PARAMETERS_TAG));
  const cell: CodeCell = {
    cell_type: "code",
    id: freshId(cells),
    metadata: { tags: [INJECTED_TAG] },
    source: parametersSource(parameters),
    execution_count: null,
    outputs: [],
  };
  if (notebook.nbformat_minor < 5) delete cell.id;
  let index: number;
  let warning: string | undefined;
  if (old >= 0 && (anchor < 0 || old === anchor + 1)) {
    cells[old] = cell;
    index = old;
  } else {
    if (old >= 0) cells.splice(old, 1);
    const at = cells.findIndex((c) => c.cell_type === "code" && hasTag(c, PARAMETERS_TAG));
    index = at + 1;
    cells.splice(index, 0, cell);
  }
  if (anchor < 0) warning = `${where} has no cell tagged "${PARAMETERS_TAG}": the parameters were injected at the top`;
  return { notebook: { ...notebook, cells }, index, ...(warning ? { warning } : {}) };
}

function freshId(cells: Cell[]): string {
  const taken = new Set(cells.map((c) => c.id));
  let id = "injected-parameters";
  for (let n = 2; taken.has(id); n++) id = `injected-parameters-${n}`;
  return id;
}

/** The names a `parameters` cell declares (`const smoke = false;` → smoke): what `-p` can set. */
export function declaredParameters(notebook: Notebook): string[] {
  const cell = notebook.cells.find((c) => c.cell_type === "code" && hasTag(c, PARAMETERS_TAG));
  if (!cell) return [];
  return [...cellSource(cell).matchAll(/^\s*(?:const|let|var)\s+([A-Za-z_$][\w$]*)/gm)].map((m) => m[1]!);
}
