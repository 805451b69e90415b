/**
 * The names a loralab kernel cell may use without importing them (kernel/executor/preload.ts puts them on
 * globalThis): every value the DSL exports, display(), and CommonJS's require (tslab compiles cells to
 * CommonJS). An exported module has to import these explicitly.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Node, Project } from "ts-morph";
import { packageRoot } from "../core/package.js";

let names: string[] | undefined;

/**
 * The DSL's exported values, read from its entry's declarations (the types "loralab" resolves to, else the
 * source): what `import { … } from "loralab"` can name, without loading the DSL itself (tfjs, vega).
 */
export function dslValueNames(): string[] {
  if (names) return names;
  const root = packageRoot();
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { types?: string };
  const entry = [pkg.types ? join(root, pkg.types) : undefined, join(root, "dsl/index.ts")].find((f) => f !== undefined && existsSync(f));
  if (!entry) throw new Error(`cannot find the DSL's entry under ${root} (is loralab built?)`);
  const file = new Project({ useInMemoryFileSystem: true }).createSourceFile("index.ts", readFileSync(entry, "utf8"));
  const found = new Set<string>();
  for (const statement of file.getStatements()) {
    if (Node.isExportDeclaration(statement)) {
      if (statement.isTypeOnly()) continue;
      for (const spec of statement.getNamedExports()) {
        if (!spec.isTypeOnly()) found.add(spec.getAliasNode()?.getText() ?? spec.getName());
      }
    } else if (Node.isVariableStatement(statement) && statement.isExported()) {
      for (const d of statement.getDeclarations()) found.add(d.getName());
    } else if ((Node.isFunctionDeclaration(statement) || Node.isClassDeclaration(statement)) && statement.isExported()) {
      const name = statement.getName();
      if (name) found.add(name);
    }
  }
  return (names = [...found]);
}
