/**
 * TypeScript code as highlighted HTML, classified by TypeScript's own language service (syntactic
 * classifications: keywords, strings, numbers, comments, regular expressions, type and parameter names).
 * Chosen over a highlighting library because it is the grammar the kernel compiles with (template literals,
 * regexes, generics and decorators classified as TypeScript reads them), it adds no dependency (ts-morph ships
 * TypeScript), and the page needs no script to show it. Config literals (`<r:8>`) are classified as the object
 * literals they stand for (the rewrite keeps every position), and shown as typed.
 */
import { Project, ts } from "ts-morph";
import { escapeHtml } from "../runtime/display.js";
import { rewriteConfigLiterals } from "../../kernel/sugar.js";

const T = ts.ClassificationType;
/** Classification → CSS class (the page's stylesheet colours these); unlisted kinds stay plain text. */
const CLASSES = new Map<number, string>([
  [T.comment, "c"],
  [T.keyword, "k"],
  [T.numericLiteral, "n"],
  [T.bigintLiteral, "n"],
  [T.stringLiteral, "s"],
  [T.regularExpressionLiteral, "s"],
  [T.className, "t"],
  [T.enumName, "t"],
  [T.interfaceName, "t"],
  [T.typeAliasName, "t"],
  [T.typeParameterName, "t"],
  [T.moduleName, "t"],
  [T.parameterName, "p"],
]);

const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { noLib: true } });
let files = 0;

/** `code` as HTML: escaped text with `<span class="k|s|n|c|t|p">` around classified tokens. */
export function highlightTs(code: string): string {
  const file = project.createSourceFile(`highlight-${++files}.ts`, rewriteConfigLiterals(code));
  try {
    const { spans } = project
      .getLanguageService()
      .compilerObject.getEncodedSyntacticClassifications(file.getFilePath(), { start: 0, length: code.length });
    let html = "";
    let at = 0;
    for (let i = 0; i + 2 < spans.length; i += 3) {
      const [start, length, kind] = [spans[i]!, spans[i + 1]!, spans[i + 2]!];
      const cls = CLASSES.get(kind);
      if (!cls || start < at) continue;
      html += escapeHtml(code.slice(at, start)) + `<span class="${cls}">${escapeHtml(code.slice(start, start + length))}</span>`;
      at = start + length;
    }
    return html + escapeHtml(code.slice(at));
  } finally {
    project.removeSourceFile(file);
  }
}
