/**
 * What cells get before they run, in the executor process:
 *
 * - `import { model, dataset, sweep } from "loralab"` works from any notebook folder: require("loralab")
 *   resolves to this kernel's own loralab (its package "exports"), and tslab's type checker sees the same
 *   package as if it were installed in <cwd>/node_modules/loralab (a read-only view mapped onto the
 *   TypeScript system object that tslab's converter reads files through).
 * - ES modules that require() cannot load (top-level await: ERR_REQUIRE_ASYNC_MODULE, vega-lite 6 for one;
 *   tslab compiles cells' imports to require()) are loaded with import() just before the cell runs, and
 *   the cell's require() of them returns that namespace.
 */
import Module, { createRequire } from "node:module";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type * as TS from "@tslab/typescript-for-tslab";

type ModuleInternals = {
  _resolveFilename: (request: string, parent: unknown, isMain: boolean, options?: unknown) => string;
  _load: (request: string, parent: unknown, isMain: boolean) => unknown;
};
const internals = Module as unknown as ModuleInternals;

/** Makes require("loralab") (from cells and their modules) load this kernel's loralab. */
export function resolveLoralabToSelf(root: string): string {
  const entry = createRequire(path.join(root, "package.json")).resolve("loralab");
  const original = internals._resolveFilename;
  internals._resolveFilename = function (request, parent, isMain, options) {
    if (request === "loralab") return entry;
    return original.call(this, request, parent, isMain, options);
  };
  return entry;
}

/** Shows tslab's compiler <cwd>/node_modules/loralab as this kernel's package root (types only). */
export function mapLoralabForTypeScript(ts: typeof TS, cwd: string, root: string): void {
  const virtual = `${cwd.replace(/\\/g, "/").replace(/\/$/, "")}/node_modules/loralab`;
  const real = root.replace(/\\/g, "/");
  const map = (p: string): string => (p === virtual || p.startsWith(`${virtual}/`) ? real + p.slice(virtual.length) : p);
  const sys = ts.sys as unknown as Record<string, unknown>;
  for (const name of [
    "fileExists",
    "readFile",
    "directoryExists",
    "getDirectories",
    "readDirectory",
    "getModifiedTime",
    "watchFile",
    "watchDirectory",
  ]) {
    const original = sys[name];
    if (typeof original !== "function") continue;
    sys[name] = function (this: unknown, p: unknown, ...rest: unknown[]) {
      return original.call(this, typeof p === "string" ? map(p) : p, ...rest);
    };
  }
}

/** The types file a package.json's "exports" gives for "." (the first "types" condition found), if any. */
function exportedTypes(exports: unknown): string | undefined {
  if (exports === null || typeof exports !== "object") return undefined;
  const entry = (exports as Record<string, unknown>)["."] ?? exports;
  const search = (node: unknown): string | undefined => {
    if (node === null || typeof node !== "object") return undefined;
    const o = node as Record<string, unknown>;
    if (typeof o.types === "string") return o.types;
    for (const key of ["import", "node", "default", "require"]) {
      const found = search(o[key]);
      if (found) return found;
    }
    return undefined;
  };
  return typeof entry === "object" ? search(entry) : undefined;
}

/**
 * tslab's compiler resolves modules the Node 10 way, which ignores package.json "exports"; packages that
 * declare their types only there (vega-lite 6, for one) would have none. This shows such package.json files
 * to the compiler with a top-level "types" added.
 */
export function addTypesFromExports(ts: typeof TS): void {
  const sys = ts.sys;
  const original = sys.readFile;
  sys.readFile = function (p: string, encoding?: string) {
    const text = original.call(this, p, encoding);
    if (text === undefined || !p.endsWith("/package.json") || !p.includes("/node_modules/")) return text;
    try {
      const pkg = JSON.parse(text) as Record<string, unknown>;
      if (pkg.types !== undefined || pkg.typings !== undefined || pkg.exports === undefined) return text;
      const types = exportedTypes(pkg.exports);
      return types ? JSON.stringify({ ...pkg, types }) : text;
    } catch {
      return text;
    }
  };
}

// ---- ES modules that require() cannot load -------------------------------------------------------------

const esmNamespaces = new Map<string, unknown>();
let hooked = false;

function hookLoad(): void {
  if (hooked) return;
  hooked = true;
  const original = internals._load;
  internals._load = function (request, parent, isMain) {
    const preloaded = esmNamespaces.get(request);
    if (preloaded !== undefined) return preloaded;
    return original.call(this, request, parent, isMain);
  };
}

/** The namespace shaped for TypeScript's CommonJS interop (__esModule: default imports take .default). */
function interop(namespace: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { __esModule: true };
  for (const key of Object.keys(namespace)) {
    Object.defineProperty(out, key, { enumerable: true, get: () => namespace[key] });
  }
  return out;
}

const TOO_ASYNC = new Set(["ERR_REQUIRE_ASYNC_MODULE", "ERR_REQUIRE_ESM"]);

/**
 * Loads the modules a cell imports that require() cannot (ESM with top-level await), with import(), so that
 * the cell's require() finds them. Everything else is left to the cell itself.
 */
export async function preloadEsmImports(ts: typeof TS, code: string, cwd: string): Promise<void> {
  const specifiers = ts.preProcessFile(code, true, true).importedFiles.map((f) => f.fileName);
  if (specifiers.length === 0) return;
  const requireFromCwd = createRequire(path.join(cwd, "__cell__.js"));
  for (const specifier of specifiers) {
    if (specifier === "loralab" || specifier === "tslab" || specifier.startsWith("node:") || esmNamespaces.has(specifier)) continue;
    let resolved: string;
    try {
      resolved = requireFromCwd.resolve(specifier);
    } catch {
      continue; // the cell reports it (or it is a virtual tslab module)
    }
    if (!/\.(m?js)$/.test(resolved)) continue;
    try {
      requireFromCwd(specifier);
    } catch (e) {
      if (!TOO_ASYNC.has((e as { code?: string }).code ?? "")) continue;
      const namespace = (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
      hookLoad();
      esmNamespaces.set(specifier, interop(namespace));
    }
  }
}
