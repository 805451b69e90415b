/**
 * A runtime error's stack as the user wants to read it: frames in cells point at the cell and line they wrote
 * (`Cell In[5], line 3:9`, through the cell's source map), a run of frames inside loralab (or inside one of
 * its packages) is folded to one line naming the function the cell called, and the kernel's own frames
 * (tslab, the executor, Node's internals) are left out.
 */
import type { PositionMap } from "./source-map.js";

interface CellSource {
  count: number;
  lines: string[];
  map?: PositionMap;
  /** Characters before the cell's code on the first line of what ran (tslab's function wrapper). */
  firstLineShift: number;
}

const cells = new Map<string, CellSource>();
const CELL_FILE = /^loralab-cell-\d+$/;

/** Records a cell about to run; returns the file name to run it under. */
export function registerCell(
  cell: { id: number; count: number; code: string },
  map: PositionMap | undefined,
  firstLineShift: number,
): string {
  const file = `loralab-cell-${cell.id}`;
  cells.set(file, { count: cell.count, lines: cell.code.split("\n"), map, firstLineShift });
  return file;
}

/** Where a position (1-based, as in stacks) of a cell's compiled code lies in the cell: 1-based line, column. */
export function cellPosition(file: string, line: number, column: number): { count: number; line: number; column: number } | undefined {
  const cell = cells.get(file);
  if (!cell?.map) return undefined;
  const at = cell.map.original({ line: line - 1, column: column - 1 - (line === 1 ? cell.firstLineShift : 0) });
  // Line 0 of the compiled TypeScript is tslab's `export {};`; the cell starts on line 1.
  if (!at || at.line < 1 || at.line > cell.lines.length) return undefined;
  return { count: cell.count, line: at.line, column: at.column + 1 };
}

export interface StackOptions {
  /** Frames under these folders are the kernel's own and left out. */
  hidden: string[];
  /** loralab's package root: frames under it are folded, under its node_modules by package. */
  root: string;
}

const FRAME = /^\s+at (async )?(?:(.+?) \((.+)\)|(.+))$/;

interface Frame {
  async: string;
  fn: string | undefined;
  location: string;
}

function parseFrame(line: string): Frame | undefined {
  const m = FRAME.exec(line);
  if (!m) return undefined;
  return { async: m[1] ?? "", fn: m[2], location: m[3] ?? m[4]! };
}

/** The package or "loralab" a library frame belongs to, or undefined for user and other code. */
function libraryOf(location: string, root: string): string | undefined {
  if (!location.startsWith(`${root}/`) && !location.startsWith(`file://${root}/`)) return undefined;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(location.slice(location.indexOf(root) + root.length));
  return pkg ? pkg[1] : "loralab";
}

/** The traceback lines (after the error's own first line) of an error's stack. */
export function readableFrames(stack: string, options: StackOptions): string[] {
  const out: string[] = [];
  let fold: { library: string; fn: string | undefined; n: number } | undefined;
  let excerptShown = false;
  const endFold = () => {
    if (!fold) return;
    out.push(`    at ${fold.fn ?? "<anonymous>"} (${fold.n === 1 ? fold.library : `${fold.library}: ${fold.n} frames`})`);
    fold = undefined;
  };
  for (const line of stack.split("\n")) {
    const frame = parseFrame(line);
    if (!frame) continue;
    const { location } = frame;
    if (options.hidden.some((dir) => location.includes(dir)) || /^node:|^evalmachine|^internal\//.test(location)) continue;
    const cell = /^(.+):(\d+):(\d+)$/.exec(location);
    if (cell && CELL_FILE.test(cell[1]!)) {
      endFold();
      const at = cellPosition(cell[1]!, Number(cell[2]), Number(cell[3]));
      if (!at) continue; // tslab's wrapper around the cell
      const where = `Cell In[${at.count}], line ${at.line}:${at.column}`;
      out.push(frame.fn ? `    at ${frame.async}${frame.fn} (${where})` : `    at ${frame.async}${where}`);
      const source = cells.get(cell[1]!)!.lines[at.line - 1]!.trim();
      if (source && !excerptShown) out.push(`        ${source}`);
      excerptShown = true;
      continue;
    }
    const library = libraryOf(location, options.root);
    if (library === undefined) {
      endFold();
      out.push(line);
      continue;
    }
    if (fold && fold.library !== library) endFold();
    // Frames run from the innermost outwards: the last of a run is the function the caller called.
    fold = { library, fn: frame.fn ?? fold?.fn, n: (fold?.n ?? 0) + 1 };
  }
  endFold();
  return out;
}
