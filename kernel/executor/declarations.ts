/**
 * tslab type-checks each cell against the declarations of all earlier cells (a .d.ts it carries from cell to
 * cell). `const s = "…"` declares `s` with its literal type, the whole string: after a 5 MB literal every later
 * cell parses and prints 5 MB of declarations again (180 ms for `1 + 1`). Long string literals in declarations
 * are widened to `string` here, so a cell's cost does not grow with the size of earlier cells' literals.
 */
import type * as TS from "@tslab/typescript-for-tslab";

/** String literal types longer than this (in characters) are declared as `string`. */
export const LONG_LITERAL = 1000;

/** The declarations with every string literal longer than `limit` widened to `string`. */
export function widenLongLiterals(ts: typeof TS, declarations: string, limit = LONG_LITERAL): string {
  if (declarations.length <= limit) return declarations;
  const file = ts.createSourceFile("__prev__.d.ts", declarations, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const edits: { start: number; end: number; text: string }[] = [];
  const isLong = (node: TS.Node) =>
    (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && node.end - node.getStart(file) > limit;
  const visit = (node: TS.Node): void => {
    // `declare const s = "…";` (a const's initializer is its literal type in a .d.ts) → `declare const s: string;`
    if (ts.isVariableDeclaration(node) && node.initializer && isLong(node.initializer) && !node.type) {
      edits.push({ start: node.name.end, end: node.initializer.end, text: ": string" });
      return;
    }
    // `"…"` as a type (a literal type inside an object or a union) → `string`
    if (ts.isLiteralTypeNode(node) && isLong(node.literal)) {
      edits.push({ start: node.getStart(file), end: node.end, text: "string" });
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  if (edits.length === 0) return declarations;
  let out = "";
  let at = 0;
  for (const e of edits.sort((a, b) => a.start - b.start)) {
    out += declarations.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + declarations.slice(at);
}
