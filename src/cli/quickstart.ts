import { UserError } from "../core/errors.js";
import { generate } from "../models/generation.js";
import { perplexity } from "../metrics/perplexity.js";
import { DEFAULT_SHIPPED_MODEL } from "../models/shipped.js";
import { parseCommandArgs } from "./args.js";
import { backendOption, prepareModel, reportBackend } from "./common.js";

/**
 * `loralab quickstart [--model M]` (what `npm start` runs): load a model — by default tiny-moby, the small
 * Moby-Dick model shipped in the package (models/tiny-moby) — score a sentence, continue a prompt.
 */
export async function quickstart(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, { ...backendOption, model: { type: "string" } });
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
  return 0;
}
