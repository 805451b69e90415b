import * as fs from "node:fs";
import * as path from "node:path";
import { UserError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";
import { readNotebook } from "../notebook/nbformat.js";
import { declaredParameters, injectParameters, parseParameters } from "../notebook/parameters.js";
import { parseCommandArgs, parseNumberOption } from "./args.js";

/** NB.ipynb → NB.out.ipynb beside it: the input stays as it was (give `-o NB.ipynb` to overwrite it). */
export function defaultRunOutput(file: string): string {
  return path.join(path.dirname(file), `${path.basename(file).replace(/\.ipynb$/i, "")}.out.ipynb`);
}

/**
 * `loralab run NB.ipynb [-p key=value …] [-o OUT.ipynb] [--timeout S] [--html OUT.html]`: executes the notebook
 * through the loralab kernel (kernel/run-notebook.ts) with papermill's parameters (src/notebook/parameters.ts).
 * Exit 0: every cell ran; 1: a cell failed or timed out; 130: stopped by Ctrl-C; 2: bad input.
 */
export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    parameter: { type: "string", short: "p", multiple: true },
    output: { type: "string", short: "o" },
    timeout: { type: "string" },
    html: { type: "string" },
  });
  if (positionals.length !== 1) throw new UserError(`expected one notebook file (NB.ipynb), got ${positionals.length}`);
  const file = positionals[0]!;
  const parameters = parseParameters(values.parameter ?? []);
  const timeoutS =
    values.timeout === undefined
      ? undefined
      : parseNumberOption("--timeout", values.timeout, 0, (n) => n > 0 && n < 2 ** 31 / 1000, "seconds > 0");
  const output = values.output ?? defaultRunOutput(file);
  for (const [flag, target] of [
    ["-o", output],
    ["--html", values.html],
  ] as const) {
    if (target === undefined) continue;
    if (target === "" || !fs.existsSync(path.dirname(path.resolve(target))))
      throw new UserError(`${flag} ${target}: no such folder ${path.dirname(path.resolve(target))}`);
  }
  const original = await readNotebook(file);
  const injected = injectParameters(original, parameters, file);
  if (injected.warning) console.error(`loralab run: warning: ${injected.warning}`);
  const declared = declaredParameters(original);
  const unknown = Object.keys(parameters).filter((k) => declared.length > 0 && !declared.includes(k));
  if (unknown.length) console.error(`loralab run: warning: the parameters cell does not declare ${unknown.join(", ")}`);
  const { runNotebook } = await import("../../kernel/run-notebook.js");
  const code = await runNotebook({ notebook: injected.notebook, output, timeoutS, cwd: path.dirname(path.resolve(file)) });
  // The page of what ran, a failed or interrupted run's partial notebook included (runNotebook fills it in place).
  if (values.html) {
    const { notebookToHtml } = await import("../export/to-html.js");
    await writeFileAtomic(values.html, notebookToHtml(injected.notebook, output));
  }
  if (code === 0) console.error(`${file} → ${output}${values.html ? ` and ${values.html}` : ""}`);
  return code;
}
