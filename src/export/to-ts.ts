/**
 * `loralab export NB.ipynb --to ts`: a notebook as one TypeScript ES module that runs with `npx tsx FILE.ts`.
 *
 * Cells follow each other as `// %%` sections (the percent format VS Code and Jupytext read as cells),
 * markdown cells as comments; imports are hoisted and merged, kernel globals imported from "loralab", the
 * `<r:8>` config literals written out, re-declared names renamed and each cell's result displayed (ts-cell.ts).
 * Top-level await stays: the output is an ES module.
 */
import { basename } from "node:path";
import { UserError } from "../core/errors.js";
import { cellSource, type Notebook } from "../notebook/nbformat.js";
import { rewriteConfigLiterals } from "../../kernel/sugar.js";
import { dslValueNames } from "./kernel-globals.js";
import { exportCell, ModuleScope } from "./ts-cell.js";
import { ImportTable } from "./ts-imports.js";

/** The notebook's language, from its metadata; TypeScript and JavaScript notebooks export. */
function checkLanguage(notebook: Notebook, where: string): void {
  const info = notebook.metadata.language_info as { name?: unknown } | undefined;
  const spec = notebook.metadata.kernelspec as { language?: unknown } | undefined;
  const language = info?.name ?? spec?.language;
  if (typeof language === "string" && !/^(typescript|javascript)$/i.test(language)) {
    throw new UserError(
      `${where}: metadata.language_info.name: expected "typescript", got ${JSON.stringify(language)} (only TypeScript notebooks export to .ts)`,
    );
  }
}

/** The exported module's text; `file` (the notebook's path) names it in the header and in errors. */
export function notebookToTs(notebook: Notebook, file: string, script: string): string {
  checkLanguage(notebook, file);
  const codes = notebook.cells.map((c) => (c.cell_type === "code" ? rewriteConfigLiterals(cellSource(c)) : ""));
  const words = new Set(codes.flatMap((code) => code.match(/[A-Za-z_$][\w$]*/g) ?? []));
  const scope = new ModuleScope(new ImportTable(), [...new Set([...dslValueNames(), "display"])], words);
  const sections: string[] = [];
  notebook.cells.forEach((cell, i) => {
    if (cell.cell_type === "code") {
      const body = exportCell(codes[i]!, i + 1, scope);
      if (body) sections.push(`// %%\n${body}`);
    } else {
      const text = cellSource(cell).trimEnd();
      if (!text) return;
      const lines = text.split(/\r?\n/).map((l) => (l ? `// ${l}` : "//"));
      sections.push(`// %% [${cell.cell_type}]\n${lines.join("\n")}`);
    }
  });
  if (scope.usesRequire) scope.imports.add({ module: "node:module", imported: "createRequire", local: "createRequire", typeOnly: false });
  const imports = scope.imports.declarations();
  const header = [
    `// ${basename(file)}, exported by \`loralab export --to ts\`: run it with \`npx tsx ${script}\`.`,
    "// What the notebook shows is printed; charts are written as PNG files beside this script.",
  ];
  const prologue = [...imports, ...(scope.usesRequire ? ["const require = createRequire(import.meta.url);"] : [])];
  if (imports.length === 0) prologue.push("export {};"); // a module, so that top-level await is allowed
  return `${[header.join("\n"), prologue.join("\n"), ...sections].join("\n\n")}\n`;
}
