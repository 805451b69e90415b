/**
 * tslab (a dependency, not a fork) set up for the kernel: its converter compiles a cell to CommonJS against the
 * declarations of earlier cells, its executor runs it with vm.runInThisContext (top-level await; variables live
 * on in one exports object). Around them:
 *
 * - source maps: the compiler emits an inline map, the ES module → CommonJS step another; each cell runs under
 *   its own file name, so a stack frame maps back to the cell and line the user wrote (stack.ts);
 * - long string literals are widened out of the carried declarations (declarations.ts);
 * - the cell globals' types (display, kernel, and the DSL's names once a cell mentions one: dsl-globals.ts);
 * - config-literal sugar and ES modules that require() cannot load (sugar.ts, preload.ts);
 * - earlier cells' variables in shorthand properties, `{ lr }` (shorthand.ts).
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import type * as ConverterModule from "tslab/dist/converter.js";
import type * as ExecutorModule from "tslab/dist/executor.js";
import type * as InspectModule from "tslab/dist/inspect.js";
import type * as TS from "@tslab/typescript-for-tslab";
import type * as VM from "node:vm";
import { CELL_GLOBALS_DTS } from "../cell-globals.js";
import { rewriteConfigLiterals } from "../sugar.js";
import { widenLongLiterals } from "./declarations.js";
import { globalsDeclarations, mentionsAny } from "./dsl-globals.js";
import { preloadEsmImports } from "./preload.js";
import { chain, SourceMap, takeInlineMap, withoutMapUrl, type PositionMap } from "./source-map.js";
import { shorthandHooks } from "./shorthand.js";
import { registerCell } from "./stack.js";

const require = createRequire(import.meta.url);
export const ts = require("@tslab/typescript-for-tslab") as typeof TS;
const vm = require("node:vm") as typeof VM;

/** Where tslab's reports about the running code go. */
export interface CompileSink {
  /** The value of the code's last expression. */
  value(value: unknown): void;
  /** A compile error, formatted with line:column and the line. */
  diagnostic(text: string): void;
  /** A thrown value. */
  error(error: unknown): void;
}

export interface RunningCode {
  /** The executor's id of the cell (unique in this process). */
  id: number;
  /** Its execution count, shown as In[count]. */
  count: number;
  code: string;
}

export interface Compiler {
  /** Runs `code`; false when it failed (the sink has heard why). */
  execute(code: string, cell: RunningCode, sink: CompileSink): Promise<boolean>;
  complete(code: string, pos: number): { start: number; end: number; candidates: string[] };
  inspect(code: string, pos: number): { found: boolean; text: string };
  /** Ends a cell that is only awaiting (tslab's interrupt). */
  interrupt(): void;
  /** Builds the type checker's first program (about a second) before a cell needs it. */
  warmUp(): void;
  close(): void;
}

const DIAGNOSTIC_FORMAT = "%s%d:%d - %s";

function describeDiagnostic(code: string, args: unknown[]): string {
  const [, file, line, column, message] = args as [string, string, number, number, string];
  const where = `${file ? `${file} ` : ""}${line}:${column}`;
  const source = file ? undefined : code.split("\n")[line - 1];
  if (source === undefined) return `${where} - ${message}`;
  return `${where} - ${message}\n    ${source}\n    ${" ".repeat(Math.max(0, column - 1))}^`;
}

/** CommonJS outputs of the last conversion → their map back to the cell's TypeScript. */
const outputMaps = new Map<string, PositionMap>();

/** TypeScript's ES module → CommonJS step (tslab's last), with a map chained to the compiler's inline one. */
function transpileWithMap(input: string, options: TS.TranspileOptions): TS.TranspileOutput {
  if (options.compilerOptions?.module !== ts.ModuleKind.CommonJS) return ts.transpileModule(input, options);
  const { code, map } = takeInlineMap(input);
  const out = ts.transpileModule(code, { ...options, compilerOptions: { ...options.compilerOptions, sourceMap: true } });
  const outputText = withoutMapUrl(out.outputText);
  if (map && out.sourceMapText) outputMaps.set(outputText, chain(SourceMap.fromJson(out.sourceMapText), map));
  return { ...out, outputText, sourceMapText: undefined };
}

/** tslab's converter module, loaded against a view of TypeScript that emits source maps. */
function loadConverterModule(): typeof ConverterModule {
  const id = require.resolve("@tslab/typescript-for-tslab", { paths: [path.dirname(require.resolve("tslab/package.json"))] });
  require(id);
  const entry = require.cache[id]!;
  const original = entry.exports as typeof TS;
  const shorthand = shorthandHooks(original);
  entry.exports = new Proxy(original, {
    get(target, key, receiver) {
      if (key === "createWatchProgram" || key === "visitEachChild") return shorthand[key];
      if (key === "transpileModule") return transpileWithMap;
      if (key === "createWatchCompilerHost")
        return (files: string[], options: TS.CompilerOptions, ...rest: unknown[]) =>
          (target.createWatchCompilerHost as (...a: unknown[]) => unknown)(files, { ...options, inlineSourceMap: true }, ...rest);
      return Reflect.get(target, key, receiver);
    },
  });
  try {
    return require("tslab/dist/converter.js") as typeof ConverterModule;
  } finally {
    entry.exports = original;
  }
}

export function createCompiler(options: { cwd: string; dslNames: string[]; log: (text: string) => void }): Compiler {
  const { createConverter } = loadConverterModule();
  const { createExecutor } = require("tslab/dist/executor.js") as typeof ExecutorModule;
  const { printQuickInfo } = require("tslab/dist/inspect.js") as typeof InspectModule;

  let sink: CompileSink | undefined;
  let running: RunningCode | undefined;
  /** The CommonJS of the cell about to run and its map, until vm runs it. */
  let converted: { output: string; map?: PositionMap } | undefined;

  const withSourceInfo = (converter: ConverterModule.Converter): ConverterModule.Converter => ({
    ...converter,
    convert(prevDecl, src) {
      const r = converter.convert(prevDecl, src);
      if (r.declOutput) r.declOutput = widenLongLiterals(ts, r.declOutput);
      converted = r.output ? { output: r.output, map: outputMaps.get(r.output) } : undefined;
      outputMaps.clear();
      return r;
    },
  });

  let nodeConverter: ConverterModule.Converter | undefined;
  let browserConverter: ConverterModule.Converter | undefined;
  let dslTypes = false;
  const converters = {
    get node() {
      if (!nodeConverter) {
        nodeConverter = withSourceInfo(createConverter({}));
        const problems = nodeConverter.addModule("__loralab_cell_globals__", CELL_GLOBALS_DTS);
        if (problems.length > 0) options.log(`cell globals: ${problems.map((d) => d.messageText).join("; ")}`);
      }
      return nodeConverter;
    },
    get browser() {
      browserConverter ??= withSourceInfo(createConverter({ isBrowser: true }));
      return browserConverter;
    },
    close() {
      nodeConverter?.close();
      browserConverter?.close();
    },
  };
  /** The DSL globals' types, added the first time code mentions one (they load the DSL's whole type tree). */
  const typesFor = (code: string, completingAt?: number) => {
    if (dslTypes || !mentionsAny(options.dslNames, code, completingAt)) return;
    dslTypes = true;
    const problems = converters.node.addModule("__loralab_dsl_globals__", globalsDeclarations(options.dslNames));
    if (problems.length > 0) options.log(`DSL globals: ${problems.map((d) => d.messageText).join("; ")}`);
  };

  const executor = createExecutor(options.cwd, converters, {
    // tslab logs the value of a cell's last expression here, and nothing else.
    log: (value: unknown) => sink?.value(value),
    // tslab reports compile diagnostics (with DIAGNOSTIC_FORMAT) and thrown values here.
    error: (...args: unknown[]) => {
      if (args[0] === DIAGNOSTIC_FORMAT) sink?.diagnostic(describeDiagnostic(running?.code ?? "", args));
      else sink?.error(args[0]);
    },
  });

  // tslab runs the converted cell with vm.runInThisContext: give it the cell's own file name, so that its
  // stack frames can be told apart from other cells' and mapped back (stack.ts).
  const runInThisContext = vm.runInThisContext;
  vm.runInThisContext = function (code: string, runOptions?: VM.RunningScriptOptions | string) {
    const pending = converted;
    converted = undefined;
    const at = pending && running ? code.indexOf(pending.output) : -1;
    if (at >= 0 && running) {
      const filename = registerCell(running, pending!.map, at);
      runOptions = { ...(typeof runOptions === "object" ? runOptions : {}), filename };
    }
    return runInThisContext.call(vm, code, runOptions);
  } as typeof VM.runInThisContext;

  const rewrite = (code: string) => rewriteConfigLiterals(code);
  return {
    async execute(code, cell, to) {
      sink = to;
      running = cell;
      try {
        await preloadEsmImports(ts, code, options.cwd);
        typesFor(code);
        return await executor.execute(rewrite(code));
      } finally {
        if (sink === to) sink = undefined;
        if (running === cell) running = undefined;
      }
    },
    complete(code, pos) {
      typesFor(code, pos);
      return executor.complete(rewrite(code), pos);
    },
    inspect(code, pos) {
      typesFor(code);
      const info = executor.inspect(rewrite(code), pos);
      return info ? { found: true, text: printQuickInfo(info) } : { found: false, text: "" };
    },
    interrupt: () => executor.interrupt(),
    warmUp: () => void converters.node,
    close: () => converters.close(),
  };
}
