/**
 * is_complete_request, on TypeScript's parser (cells are .ts, so `<T>x` is a type assertion, not JSX):
 *   complete    no syntax error
 *   incomplete  the only errors are at the very end, and say something is still expected there
 *               (an open bracket, block, argument list, template literal or comment); indent = next line's
 *   invalid     a syntax error that more lines cannot fix (the frontend runs the cell and shows it)
 * Code that ends with a blank line is never incomplete (a console's way to force execution).
 * Config literals (`f(<r:8>)`, see sugar.ts) are rewritten first. Parsing only: nothing is executed.
 */
import { createRequire } from "node:module";
import type * as TS from "@tslab/typescript-for-tslab";
import { rewriteConfigLiterals } from "./sugar.js";

const require = createRequire(import.meta.url);
let ts: typeof TS | undefined;

export interface IsCompleteReply {
  status: "complete" | "incomplete" | "invalid";
  indent?: string;
}

const UNTERMINATED_TEMPLATE = 1160;

/** The indent for the line after `code`: one level deeper after an opener, else the last line's. */
function nextIndent(code: string): string {
  const last = code.slice(code.lastIndexOf("\n") + 1);
  const current = /^[ \t]*/.exec(last)![0];
  return /([{[(]|=>)\s*$/.test(last) ? `${current}  ` : current;
}

export function isComplete(code: string): IsCompleteReply {
  if (code.trim() === "") return { status: "complete" };
  ts ??= require("@tslab/typescript-for-tslab") as typeof TS;
  const source = rewriteConfigLiterals(code);
  const file = ts.createSourceFile("cell.ts", source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const diagnostics = (file as unknown as { parseDiagnostics: TS.DiagnosticWithLocation[] }).parseDiagnostics;
  if (diagnostics.length === 0) return { status: "complete" };
  const forced = /(^|\n)[ \t]*\n[ \t]*$/.test(code);
  const end = source.length;
  const atEnd = (d: TS.DiagnosticWithLocation) =>
    (d.start === end && d.length === 0 && typeof d.messageText === "string" && d.messageText.endsWith(" expected.")) ||
    (d.code === UNTERMINATED_TEMPLATE && d.start === end);
  if (!forced && diagnostics.every(atEnd)) return { status: "incomplete", indent: nextIndent(code) };
  return { status: "invalid" };
}
