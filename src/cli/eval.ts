import { UserError } from "../errors.js";
import { readJsonl } from "../data/jsonl.js";
import { rowToExample } from "../data/rows.js";
import { perplexity } from "../metrics/perplexity.js";
import { isPositiveInt, parseCommandArgs, parseNumberOption, requireOption } from "./args.js";
import { adapterOption, backendOption, prepareModel, printJson, withAdapter } from "./common.js";

const METRICS = ["perplexity"];

/** `loralab eval --model M [--adapter DIR] --data F.jsonl --metrics perplexity [--json]` */
export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption, ...adapterOption, model: { type: "string" }, data: { type: "string" }, metrics: { type: "string", default: "perplexity" },
    batch: { type: "string" }, stride: { type: "string" }, json: { type: "boolean" },
  });
  const modelRef = requireOption(values.model, "--model");
  const dataFile = requireOption(values.data, "--data");
  const metrics = values.metrics.split(",").map((m) => m.trim());
  const unknown = metrics.filter((m) => !METRICS.includes(m));
  if (unknown.length) throw new UserError(`--metrics: unknown metric "${unknown[0]}"; available: ${METRICS.join(", ")}`);
  const batchSize = parseNumberOption("--batch", values.batch, 8, isPositiveInt, "a positive integer");
  const rows = readJsonl(dataFile); // validate the data before the (slower) model load
  const loaded = await prepareModel(modelRef, values.backend, Boolean(values.json));
  const ctx = { file: dataFile, tokenizer: loaded.tokenizer, vocabSize: loaded.config.vocabSize };
  const examples = rows.map((row) => rowToExample(ctx, row));
  const stride = values.stride === undefined ? undefined : parseNumberOption("--stride", values.stride, 0, isPositiveInt, "a positive integer");
  const model = await withAdapter(loaded, values.adapter);
  const result = perplexity(model, examples, { batchSize, stride });
  if (values.json) printJson({ loss: result.loss, perplexity: result.perplexity, tokens: result.tokens });
  else console.log(`perplexity ${result.perplexity.toFixed(4)} (loss ${result.loss.toFixed(6)} over ${result.tokens} tokens, ${examples.length} rows)`);
  return 0;
}
