import * as path from "node:path";
import { UserError } from "../core/errors.js";
import { oneOf, validate } from "../core/check.js";
import { writeFileAtomic } from "../core/files.js";
import { readNotebook } from "../notebook/nbformat.js";
import { parseCommandArgs, requireOption } from "./args.js";

const FORMATS = ["ts", "html"] as const;

/**
 * `loralab export NB.ipynb --to ts|html [-o FILE]`: the notebook as a TypeScript module that runs with tsx, or
 * as a standalone HTML page. The output goes beside the notebook (same name, new extension) unless -o names a
 * file; `-o -` prints it.
 */
export async function exportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { to: { type: "string" }, output: { type: "string", short: "o" } });
  if (positionals.length !== 1) throw new UserError(`expected one notebook file (NB.ipynb), got ${positionals.length}`);
  const file = positionals[0]!;
  const format = validate(requireOption(values.to, "--to"), oneOf(...FORMATS), "", "--to");
  const out = values.output ?? path.join(path.dirname(file), `${path.basename(file).replace(/\.ipynb$/i, "")}.${format}`);
  const notebook = await readNotebook(file);
  const text =
    format === "ts"
      ? (await import("../export/to-ts.js")).notebookToTs(notebook, file, out === "-" ? "FILE.ts" : path.basename(out))
      : (await import("../export/to-html.js")).notebookToHtml(notebook, file);
  if (out === "-") {
    process.stdout.write(text);
    return 0;
  }
  await writeFileAtomic(out, text);
  console.error(`${file} → ${out}`);
  return 0;
}
