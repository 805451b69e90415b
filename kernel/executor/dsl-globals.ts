/**
 * The DSL's values as cell globals (`model`, `dataset`, `sweep`, …), loaded on first use: the names are read
 * from the DSL entry's export statements without running it, and each global is a getter that loads the DSL
 * (and with it tfjs) the first time a cell touches one. A kernel whose cells never use the DSL never loads it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as TS from "@tslab/typescript-for-tslab";

/** The value names an ES module exports (following `export * from`), read from its source. */
export function exportedNames(ts: typeof TS, file: string, seen = new Set<string>()): string[] {
  if (seen.has(file)) return [];
  seen.add(file);
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const names: string[] = [];
  const exported = (node: TS.Node) =>
    ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  for (const statement of source.statements) {
    if (ts.isExportDeclaration(statement) && !statement.isTypeOnly) {
      const clause = statement.exportClause;
      if (clause && ts.isNamedExports(clause)) {
        for (const e of clause.elements) if (!e.isTypeOnly) names.push(e.name.text);
      } else if (!clause && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)) {
        const target = statement.moduleSpecifier.text;
        if (target.startsWith(".")) names.push(...exportedNames(ts, path.resolve(path.dirname(file), target), seen));
      }
    } else if (exported(statement)) {
      if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) names.push(d.name.text);
      } else if ((ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) && statement.name) {
        names.push(statement.name.text);
      }
    }
  }
  return [...new Set(names)].filter((n) => n !== "default");
}

/** Defines each name on globalThis as a getter that loads the module on first access; returns the names defined. */
export function defineLazyGlobals(names: string[], load: () => Record<string, unknown>): string[] {
  const defined = names.filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && !(n in globalThis));
  let module: Record<string, unknown> | undefined;
  for (const name of defined) {
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: false,
      get() {
        module ??= load();
        const value = module[name];
        // From now on a plain (writable) global, as if it had been defined eagerly.
        Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
        return value;
      },
      set(value: unknown) {
        Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
      },
    });
  }
  return defined;
}

/** The type declarations of those globals, for tslab's checker. */
export function globalsDeclarations(names: string[]): string {
  return `declare global {\n${names.map((n) => `  const ${n}: typeof import("loralab")["${n}"];`).join("\n")}\n}\n`;
}

/** True when `code` may use one of `names` (a mention anywhere, or, when completing, a prefix of one). */
export function mentionsAny(names: string[], code: string, completingAt?: number): boolean {
  if (names.length === 0) return false;
  const words = new Set(code.match(/[A-Za-z_$][\w$]*/g) ?? []);
  if (names.some((n) => words.has(n))) return true;
  if (completingAt === undefined) return false;
  const partial = /[A-Za-z_$][\w$]*$/.exec(code.slice(0, completingAt))?.[0];
  return partial !== undefined && names.some((n) => n.startsWith(partial));
}
