import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../errors.js";
import { generate } from "../generate.js";
import { perplexity } from "../metrics/perplexity.js";
import { parseCommandArgs } from "./args.js";
import { backendOption, prepareModel, reportBackend } from "./common.js";

/** Where `npm start` looks for a model when none is given (a checkout's sibling shared/ folder). */
function defaultModel(): string | undefined {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  const candidate = path.resolve(repo, "../shared/models/stories260K");
  return fs.existsSync(path.join(candidate, "config.json")) ? candidate : undefined;
}

/** `loralab quickstart [--model M]`: load a model, score a sentence, continue a prompt. */
export async function quickstart(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { ...backendOption, model: { type: "string" } });
  const ref = values.model ?? process.env.LORALAB_MODEL ?? defaultModel();
  if (!ref) throw new UserError("no model given: pass --model DIR|ID (or set LORALAB_MODEL)");
  const loaded = await prepareModel(ref, values.backend);
  reportBackend();
  const c = loaded.config;
  console.log(`model: ${loaded.dir} (${c.modelType}, ${c.numLayers} layers, hidden ${c.hiddenSize}, vocab ${c.vocabSize})`);
  if (!loaded.tokenizer) throw new UserError(`${loaded.dir}: the quickstart needs tokenizer.json`);
  const sentence = "Once upon a time, there was a little girl who loved to play in the park.";
  const scored = perplexity(loaded.model, [{ inputIds: loaded.tokenizer.encode(sentence) }]);
  console.log(`perplexity of "${sentence}": ${scored.perplexity.toFixed(3)} over ${scored.tokens} tokens`);
  const prompt = "Once upon a time";
  const started = performance.now();
  const out = generate(loaded.model, loaded.tokenizer.encode(prompt), { maxNewTokens: 40, eosTokenIds: loaded.eosTokenIds });
  const seconds = (performance.now() - started) / 1000;
  console.log(`greedy continuation of "${prompt}":\n  ${prompt}${loaded.tokenizer.decode(out.ids)}`);
  console.log(`(${out.ids.length} tokens in ${seconds.toFixed(2)} s, ${(out.ids.length / seconds).toFixed(1)} tokens/s)`);
  return 0;
}
