import * as fs from "node:fs";
import * as path from "node:path";
import { UserError } from "../core/errors.js";
import { packageRoot } from "../core/package.js";
import { generate } from "../models/generation.js";
import { perplexity } from "../metrics/perplexity.js";
import { DEFAULT_SHIPPED_MODEL } from "../models/shipped.js";
import { parseCommandArgs } from "./args.js";
import { backendOption, prepareModel, reportBackend } from "./common.js";

/**
 * `loralab quickstart [--model M] [--notebook DIR]` (what `npm start` runs): load a model — by default tiny-moby,
 * the small Moby-Dick model shipped in the package (models/tiny-moby) — score a sentence, continue a prompt. With
 * --notebook, then run the package's notebooks/quickstart.ipynb through `loralab run` into DIR (quickstart.ipynb
 * and quickstart.html; the notebook's runs in DIR/runs unless LORALAB_RUNS_DIR says otherwise).
 */
export async function quickstart(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { ...backendOption, model: { type: "string" }, notebook: { type: "string" } });
  const ref = values.model ?? (process.env.LORALAB_MODEL || DEFAULT_SHIPPED_MODEL);
  const loaded = await prepareModel(ref, values.backend);
  reportBackend();
  const c = loaded.config;
  console.log(`model: ${loaded.dir} (${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize})`);
  if (!loaded.tokenizer) throw new UserError(`${loaded.dir}: the quickstart needs tokenizer.json`);
  const sentence =
    "Call me Ishmael. Some years ago—never mind how long precisely—I thought I would sail about a little and see the watery part of the world.";
  const scored = perplexity(loaded.model, [{ inputIds: loaded.tokenizer.encode(sentence) }]);
  console.log(`perplexity of "${sentence}": ${scored.perplexity.toFixed(3)} over ${scored.tokens} tokens`);
  const prompt = "Call me Ishmael.";
  const started = performance.now();
  const out = generate(loaded.model, loaded.tokenizer.encode(prompt), { maxNewTokens: 40, eosTokenIds: loaded.eosTokenIds });
  const seconds = (performance.now() - started) / 1000;
  console.log(`greedy continuation of "${prompt}":\n  ${prompt}${loaded.tokenizer.decode(out.ids)}`);
  console.log(`(${out.ids.length} tokens in ${seconds.toFixed(2)} s, ${(out.ids.length / seconds).toFixed(1)} tokens/s)`);
  return values.notebook === undefined ? 0 : runQuickstartNotebook(values.notebook);
}

async function runQuickstartNotebook(dir: string): Promise<number> {
  fs.mkdirSync(dir, { recursive: true });
  process.env.LORALAB_RUNS_DIR ||= path.resolve(dir, "runs");
  const notebook = path.join(dir, "quickstart.ipynb");
  const html = path.join(dir, "quickstart.html");
  console.log(`\nrunning the quickstart notebook (notebooks/quickstart.ipynb) on the loralab kernel:`);
  const { runCommand } = await import("./run.js");
  const code = await runCommand([path.join(packageRoot(), "notebooks", "quickstart.ipynb"), "-o", notebook, "--html", html]);
  if (code !== 0) return code;
  const shown = (f: string) => (path.isAbsolute(dir) ? f : `./${f}`);
  console.log(
    `\nthe executed notebook and its page are in ${shown(dir)}/:\n  open ${shown(html)}        (or: jupyter lab ${shown(notebook)})`,
  );
  return 0;
}
