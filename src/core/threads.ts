/**
 * Worker threads that run one of loralab's own modules: the compiled JavaScript under plain node, or, when loralab
 * runs from its TypeScript source, the source through tsx's loader registered inside the worker (a worker that
 * inherits the parent's `--import tsx` fails to load its script, so none of the parent's flags are passed on).
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

/** A worker thread running the module `sibling` (a file name without extension) beside the module at `from` (its import.meta.url). */
export function startModuleWorker(from: string, sibling: string, name: string): Worker {
  const here = fileURLToPath(from);
  const script = here.replace(/[^\\/]+\.(js|ts)$/, `${sibling}.$1`);
  if (here.endsWith(".js")) return new Worker(script, { execArgv: [], name });
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(pathToFileURL(script).href)}); })`;
  return new Worker(boot, { eval: true, execArgv: [], name });
}
