/**
 * Input history for history_request (tail, range, search), kept in memory for the kernel's lifetime.
 * Entries are [session, line, input] or, with output, [session, line, [input, output]] as IPython sends them.
 * The kernel's own session is number 1; session 0 and negative numbers (IPython's "current"/"relative")
 * mean it too. search patterns are globs matched against the whole input (* ? [..]), as IPython's sqlite GLOB.
 */
export const SESSION = 1;

interface Entry {
  line: number;
  input: string;
  output: string | null;
}

export type HistoryItem = [number, number, string | [string, string | null]];

export interface HistoryRequest {
  hist_access_type?: string;
  output?: boolean;
  raw?: boolean;
  session?: number;
  start?: number;
  stop?: number;
  n?: number;
  pattern?: string;
  unique?: boolean;
}

/** A glob (sqlite GLOB semantics: case-sensitive, * ? [set] [^set]) as an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") re += "[\\s\\S]*";
    else if (c === "?") re += "[\\s\\S]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let set = glob.slice(i + 1, close);
      const negate = set.startsWith("^");
      if (negate) set = set.slice(1);
      re += `[${negate ? "^" : ""}${set.replace(/[\\\]]/g, "\\$&")}]`;
      i = close;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export class History {
  private readonly entries: Entry[] = [];

  /** Records an executed cell under its execution count. */
  add(line: number, input: string): void {
    this.entries.push({ line, input, output: null });
  }

  /** The text/plain of the cell's execute_result, for output=true requests. */
  setOutput(line: number, output: string): void {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i]!.line === line) {
        this.entries[i]!.output = output;
        return;
      }
    }
  }

  get length(): number {
    return this.entries.length;
  }

  query(req: HistoryRequest): HistoryItem[] {
    const output = req.output === true;
    const item = (e: Entry): HistoryItem => [SESSION, e.line, output ? [e.input, e.output] : e.input];
    const n = typeof req.n === "number" && req.n > 0 ? Math.floor(req.n) : undefined;
    switch (req.hist_access_type) {
      case "tail":
        return (n === undefined ? this.entries : this.entries.slice(-n)).map(item);
      case "range": {
        const session = req.session ?? 0;
        if (session > 0 && session !== SESSION) return [];
        const start = req.start ?? 0;
        const stop = req.stop ?? Number.POSITIVE_INFINITY;
        return this.entries.filter((e) => e.line >= start && e.line < stop).map(item);
      }
      case "search": {
        const re = globToRegExp(req.pattern ?? "*");
        let hits = this.entries.filter((e) => re.test(e.input));
        if (req.unique) {
          const lastIndex = new Map<string, number>();
          hits.forEach((e, i) => lastIndex.set(e.input, i));
          hits = hits.filter((e, i) => lastIndex.get(e.input) === i);
        }
        if (n !== undefined) hits = hits.slice(-n);
        return hits.map(item);
      }
      default:
        return [];
    }
  }
}
