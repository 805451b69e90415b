/**
 * One code cell turned into statements of the exported module.
 *
 * A cell is compiled on its own, as the kernel does, with every earlier cell's top-level names declared in a
 * preamble (`declare let x: any;`) so that TypeScript's own rename finds exactly the references that mean them
 * (not a same-named parameter, not a property, and `{ x }` becomes `{ x: x_5 }`). Then:
 * - a name a later cell declares again (`const x` in cell 2 and again in cell 5, as notebooks do) is renamed in
 *   that cell and in every later reference (`x_5`): renaming keeps each declaration's own type, where turning it
 *   into an assignment would fail to type-check as soon as the two values differ in type;
 * - a kernel global the cell uses (`model`, `display`, `require`, …) becomes an import;
 * - the cell's imports leave it (the module hoists them), the same binding imported again is the same name;
 * - its last bare expression, which the kernel shows as the cell's result, becomes `display(expr)`.
 */
import { Node, Project, type Identifier, type ImportDeclaration, type SourceFile, type Statement } from "ts-morph";
import type { ImportTable } from "./ts-imports.js";

/** What a module-level name is, so that a preamble can declare it with the same meanings. */
type Meaning = "value" | "type" | "both";

interface ModuleName {
  /** The name the module uses for it (the cell's name, or a rename). */
  alias: string;
  meaning: Meaning;
  /** `module|imported` for an imported name: the same import again is not a new declaration. */
  importKey?: string;
}

interface Declared {
  name: string;
  node: Identifier;
  meaning: Meaning;
  importKey?: string;
}

/** The module being assembled: its names so far, its imports, the globals it needed. */
export class ModuleScope {
  readonly names = new Map<string, ModuleName>();
  usesRequire = false;
  private readonly taken: Set<string>;

  constructor(
    readonly imports: ImportTable,
    /** Kernel globals to import from "loralab" when a cell uses them. */
    readonly globals: readonly string[],
    /** Every word of the notebook's code: renames avoid them all. */
    words: Iterable<string>,
  ) {
    this.taken = new Set([...words, ...globals]);
  }

  fresh(name: string, cell: number): string {
    let alias = `${name}_${cell}`;
    for (let i = 2; this.taken.has(alias); i++) alias = `${name}_${cell}_${i}`;
    this.taken.add(alias);
    return alias;
  }

  /** Records that a cell used kernel global `name` (imported from "loralab", or createRequire for require). */
  useGlobal(name: string): void {
    if (this.names.has(name)) return;
    if (name === "require") this.usesRequire = true;
    else this.imports.add({ module: "loralab", imported: name, local: name, typeOnly: false });
    this.names.set(name, { alias: name, meaning: "value", importKey: name === "require" ? "require" : `loralab|${name}` });
  }
}

const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { noLib: true } });

/** A cell's statements for the module (imports taken out into `scope.imports`), as text. */
export function exportCell(code: string, cell: number, scope: ModuleScope): string {
  const alone = parse(code);
  const own = new Set(topLevelDeclarations(alone).map((d) => d.name));
  project.removeSourceFile(alone);
  const preamble: [name: string, alias: string, global: boolean][] = [];
  const lines: string[] = [];
  for (const [name, n] of scope.names) {
    if (own.has(name)) continue;
    preamble.push([name, n.alias, false]);
    lines.push(
      n.meaning === "value" ? `declare let ${name}: any;` : n.meaning === "type" ? `type ${name} = any;` : `declare class ${name} {}`,
    );
  }
  for (const name of scope.globals.concat("require")) {
    if (own.has(name) || scope.names.has(name)) continue;
    preamble.push([name, name, true]);
    lines.push(`declare let ${name}: any;`);
  }
  const file = parse(`${lines.join("\n")}\n${code}`);
  try {
    const declaredIn = (i: number) => preambleName(file.getStatements()[i]!);
    preamble.forEach(([name, alias, global], i) => {
      if (global) {
        if (declaredIn(i).findReferencesAsNodes().length > 0) scope.useGlobal(name);
      } else if (alias !== name) declaredIn(i).rename(alias, { usePrefixAndSuffixText: true });
    });
    const body = () => file.getStatements().slice(preamble.length);
    // Node wrappers may not survive a rename: collect the declarations afresh before each.
    const count = topLevelDeclarations(file, preamble.length).length;
    for (let i = 0; i < count; i++) declare(topLevelDeclarations(file, preamble.length)[i]!, cell, scope);
    for (const statement of body()) if (Node.isImportDeclaration(statement)) hoistImport(statement, scope.imports);
    for (const statement of body()) if (Node.isImportDeclaration(statement)) statement.remove();
    const last = body().at(-1);
    if (last && Node.isExpressionStatement(last) && isResult(last)) {
      scope.useGlobal("display");
      let expression = last.getExpression();
      while (Node.isParenthesizedExpression(expression)) expression = expression.getExpression();
      last.replaceWithText(`${scope.names.get("display")!.alias}(${expression.getText()});`);
    }
    const start = preamble.length > 0 ? file.getStatements()[preamble.length - 1]!.getEnd() + 1 : 0;
    return file.getFullText().slice(start).trim();
  } finally {
    project.removeSourceFile(file);
  }
}

let files = 0;

/** A fresh file each time: the language service caches files by name, and a reused name can answer from stale text. */
function parse(code: string): SourceFile {
  return project.createSourceFile(`cell-${++files}.ts`, code);
}

function preambleName(statement: Statement): Identifier {
  const node = Node.isVariableStatement(statement)
    ? statement.getDeclarations()[0]!.getNameNode()
    : Node.isTypeAliasDeclaration(statement) || Node.isClassDeclaration(statement)
      ? statement.getNameNode()
      : undefined;
  if (!node || !Node.isIdentifier(node)) throw new Error(`unexpected preamble statement: ${statement.getText()}`);
  return node;
}

/** Gives a cell's own declaration its module name: itself, or a rename when an earlier cell took the name. */
function declare(d: Declared, cell: number, scope: ModuleScope): void {
  const earlier = scope.names.get(d.name);
  const alias = !earlier
    ? d.name
    : d.importKey !== undefined && earlier.importKey === d.importKey
      ? earlier.alias
      : scope.fresh(d.name, cell);
  if (alias !== d.name) d.node.rename(alias, { usePrefixAndSuffixText: true });
  scope.names.set(d.name, { alias, meaning: d.meaning, ...(d.importKey !== undefined ? { importKey: d.importKey } : {}) });
}

/** A cell's last expression statement is its shown result, unless it is a display/console call (nothing to show). */
function isResult(statement: Statement): boolean {
  if (!Node.isExpressionStatement(statement)) return false;
  const e = statement.getExpression();
  if (Node.isVoidExpression(e)) return false;
  return !(Node.isCallExpression(e) && /^(display|console)(\.\w+)?$|^clearOutput$/.test(e.getExpression().getText()));
}

function hoistImport(statement: ImportDeclaration, imports: ImportTable): void {
  const module = statement.getModuleSpecifierValue();
  const typeOnly = statement.isTypeOnly();
  const clause = statement.getImportClause();
  if (!clause) return imports.addSideEffect(module);
  const def = statement.getDefaultImport();
  if (def) imports.add({ module, imported: "default", local: def.getText(), typeOnly });
  const ns = statement.getNamespaceImport();
  if (ns) imports.addNamespace(module, ns.getText(), typeOnly);
  for (const spec of statement.getNamedImports()) {
    const local = spec.getAliasNode()?.getText() ?? spec.getName();
    imports.add({ module, imported: spec.getName(), local, typeOnly: typeOnly || spec.isTypeOnly() });
  }
}

/** The names a cell declares at its top level (after the first `skip` statements, the preamble). */
function topLevelDeclarations(file: SourceFile, skip = 0): Declared[] {
  const out: Declared[] = [];
  const add = (node: Node | undefined, meaning: Meaning, importKey?: string) => {
    if (node && Node.isIdentifier(node)) out.push({ name: node.getText(), node, meaning, ...(importKey ? { importKey } : {}) });
  };
  const bindings = (node: Node): void => {
    if (Node.isIdentifier(node)) add(node, "value");
    else if (Node.isObjectBindingPattern(node) || Node.isArrayBindingPattern(node))
      for (const element of node.getElements()) if (Node.isBindingElement(element)) bindings(element.getNameNode());
  };
  for (const s of file.getStatements().slice(skip)) {
    if (Node.isVariableStatement(s)) for (const d of s.getDeclarations()) bindings(d.getNameNode());
    else if (Node.isFunctionDeclaration(s)) add(s.getNameNode(), "value");
    else if (Node.isClassDeclaration(s) || Node.isEnumDeclaration(s) || Node.isModuleDeclaration(s)) add(s.getNameNode(), "both");
    else if (Node.isInterfaceDeclaration(s) || Node.isTypeAliasDeclaration(s)) add(s.getNameNode(), "type");
    else if (Node.isImportDeclaration(s)) {
      const module = s.getModuleSpecifierValue();
      const meaning: Meaning = s.isTypeOnly() ? "type" : "both";
      add(s.getDefaultImport(), meaning, `${module}|default`);
      add(s.getNamespaceImport(), meaning, `${module}|*`);
      for (const spec of s.getNamedImports())
        add(spec.getAliasNode() ?? spec.getNameNode(), spec.isTypeOnly() ? "type" : meaning, `${module}|${spec.getName()}`);
    }
  }
  return out;
}
