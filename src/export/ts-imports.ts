/**
 * The imports of an exported notebook, hoisted out of its cells: one declaration per module, named imports of
 * the same module merged, the same binding imported twice kept once, type-only kept type-only unless some cell
 * imports the name as a value.
 */

/** One imported binding: `imported` is the exported name ("default" for a default import). */
export interface Binding {
  module: string;
  imported: string;
  local: string;
  typeOnly: boolean;
}

interface ModuleImports {
  named: Map<string, Binding>; // by local name
  namespaces: Map<string, boolean>; // local name → type-only
  sideEffect: boolean;
}

export class ImportTable {
  private readonly modules = new Map<string, ModuleImports>();

  private entry(module: string): ModuleImports {
    let m = this.modules.get(module);
    if (!m) this.modules.set(module, (m = { named: new Map(), namespaces: new Map(), sideEffect: false }));
    return m;
  }

  add(binding: Binding): void {
    const named = this.entry(binding.module).named;
    const known = named.get(binding.local);
    named.set(binding.local, known ? { ...known, typeOnly: known.typeOnly && binding.typeOnly } : binding);
  }

  addNamespace(module: string, local: string, typeOnly: boolean): void {
    const namespaces = this.entry(module).namespaces;
    namespaces.set(local, (namespaces.get(local) ?? true) && typeOnly);
  }

  addSideEffect(module: string): void {
    this.entry(module).sideEffect = true;
  }

  /** The import declarations, modules in the order they were first imported. */
  declarations(): string[] {
    const lines: string[] = [];
    for (const [module, m] of this.modules) {
      const from = JSON.stringify(module);
      const named = [...m.named.values()];
      const defaults = named.filter((b) => b.imported === "default");
      // A default import of a value reads `import x from`; further (or type-only) ones go inside the braces.
      const head = defaults.find((b) => !b.typeOnly);
      const rest = named.filter((b) => b !== head);
      const allTypes = head === undefined && rest.length > 0 && rest.every((b) => b.typeOnly);
      const specifiers = rest.map((b) => {
        const name = b.imported === b.local ? b.local : `${b.imported} as ${b.local}`;
        return b.typeOnly && !allTypes ? `type ${name}` : name;
      });
      const clauses = [head?.local, specifiers.length > 0 ? `{ ${specifiers.join(", ")} }` : undefined].filter(Boolean);
      if (clauses.length > 0) lines.push(`import ${allTypes ? "type " : ""}${clauses.join(", ")} from ${from};`);
      for (const [local, typeOnly] of m.namespaces) lines.push(`import ${typeOnly ? "type " : ""}* as ${local} from ${from};`);
      if (m.sideEffect && clauses.length === 0 && m.namespaces.size === 0) lines.push(`import ${from};`);
    }
    return lines;
  }
}
