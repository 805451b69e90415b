/**
 * Reading source maps (version 3) to find where a position in compiled code came from. A cell is compiled
 * twice (TypeScript → ES module by tslab's compiler, ES module → CommonJS), so a position in the code that runs
 * goes back through two maps to the line the user wrote.
 */

/** A position, 0-based line and column. */
export interface Position {
  line: number;
  column: number;
}

export interface PositionMap {
  /** Where the generated position came from; undefined where the map says nothing. */
  original(at: Position): Position | undefined;
}

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DIGIT = new Map([...BASE64].map((c, i) => [c, i]));

/** The numbers of one base64 VLQ segment ("AACA" → [0, 0, 1, 0]). */
export function decodeVlq(segment: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const c of segment) {
    const digit = DIGIT.get(c);
    if (digit === undefined) throw new Error(`invalid base64 VLQ character ${JSON.stringify(c)}`);
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) {
      shift += 5;
      continue;
    }
    out.push(value % 2 === 1 ? -Math.floor(value / 2) : value / 2);
    value = 0;
    shift = 0;
  }
  return out;
}

interface Segment {
  column: number;
  line: number;
  originalColumn: number;
}

/** One source map (of a single source, as a cell's are), decoded when first asked (most cells never fail). */
export class SourceMap implements PositionMap {
  private decoded: Segment[][] | undefined;

  constructor(private readonly mappings: string) {}

  static fromJson(json: string): SourceMap {
    const parsed = JSON.parse(json) as { mappings?: unknown };
    if (typeof parsed.mappings !== "string") throw new Error("a source map without mappings");
    return new SourceMap(parsed.mappings);
  }

  private get lines(): Segment[][] {
    if (this.decoded) return this.decoded;
    this.decoded = [];
    let line = 0;
    let originalColumn = 0;
    for (const group of this.mappings.split(";")) {
      const segments: Segment[] = [];
      let column = 0;
      for (const text of group.split(",")) {
        if (text === "") continue;
        const [dColumn = 0, , dLine, dOriginalColumn] = decodeVlq(text);
        column += dColumn;
        if (dLine === undefined || dOriginalColumn === undefined) continue; // a segment that maps to nothing
        line += dLine;
        originalColumn += dOriginalColumn;
        segments.push({ column, line, originalColumn });
      }
      this.decoded.push(segments);
    }
    return this.decoded;
  }

  /** The start of the mapped piece of code that holds `at` (the nearest one before it on its line). */
  original(at: Position): Position | undefined {
    const segments = this.lines[at.line];
    if (!segments || segments.length === 0) return undefined;
    let best = segments[0]!;
    for (const s of segments) if (s.column <= at.column) best = s;
    return { line: best.line, column: best.originalColumn };
  }
}

/** Positions looked up through `first`, then through `second` (compiled twice: map the last step first). */
export function chain(first: PositionMap, second: PositionMap): PositionMap {
  return {
    original(at) {
      const middle = first.original(at);
      return middle && second.original(middle);
    },
  };
}

const INLINE = /\n?\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/;
const TRAILING_URL = /\n?\/\/# sourceMappingURL=\S*\s*$/;

/** Splits a compiler's output into its code and its inline source map (if it has one). */
export function takeInlineMap(code: string): { code: string; map?: SourceMap } {
  const m = INLINE.exec(code);
  if (!m) return { code };
  return { code: code.slice(0, m.index), map: SourceMap.fromJson(Buffer.from(m[1]!, "base64").toString("utf8")) };
}

/** The code without a trailing `//# sourceMappingURL=…` comment. */
export function withoutMapUrl(code: string): string {
  return code.replace(TRAILING_URL, "");
}
