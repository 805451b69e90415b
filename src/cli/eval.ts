import { invalid } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { readJsonl } from "../data/jsonl.js";
import { rowToExample } from "../data/rows.js";
import { generationScoresOn, perplexityOn } from "../metrics/evaluate.js";
import { NonFiniteLossError } from "../metrics/perplexity.js";
import { GENERATION_METRICS, type GenerationMetric } from "../metrics/generation-eval.js";
import { withEvalThreads } from "../train/eval-threads.js";
import { isPositiveInt, parseCommandArgs, parseNumberOption, requireOption } from "./args.js";
import { modelOptions, prepareModel, printJson, quantizeFlag, reportBackend, withAdapter } from "./common.js";

const METRICS = ["perplexity", ...GENERATION_METRICS];

/**
 * `loralab eval --model M [--adapter DIR] --data F.jsonl --metrics perplexity[,bleu,chrf,exact_match] [--workers N|auto] [--json]`
 * Generation metrics need prompt/completion rows: each prompt is continued greedily and compared with its completion.
 * The windows and generations are shared among threads (--workers; "auto": the cores, when the work pays for them).
 */
export async function evalCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...modelOptions,
    model: { type: "string" },
    data: { type: "string" },
    metrics: { type: "string", default: "perplexity" },
    batch: { type: "string" },
    stride: { type: "string" },
    "max-length": { type: "string" },
    "max-new-tokens": { type: "string" },
    workers: { type: "string", default: "auto" },
    json: { type: "boolean" },
  });
  const modelRef = requireOption(values.model, "--model");
  const dataFile = requireOption(values.data, "--data");
  const metrics = values.metrics.split(",").map((m) => m.trim());
  const unknown = metrics.filter((m) => !METRICS.includes(m));
  if (unknown.length) throw new UserError(`--metrics: unknown metric "${unknown[0]}"; available: ${METRICS.join(", ")}`);
  const batchSize = parseNumberOption("--batch", values.batch, 8, isPositiveInt, "a positive integer");
  const stride =
    values.stride === undefined ? undefined : parseNumberOption("--stride", values.stride, 0, isPositiveInt, "a positive integer");
  const maxLength =
    values["max-length"] === undefined
      ? undefined
      : parseNumberOption("--max-length", values["max-length"], 0, (n) => Number.isInteger(n) && n >= 2, "an integer ≥ 2");
  const quantize = quantizeFlag(values.quantize);
  const maxNewTokens =
    values["max-new-tokens"] === undefined
      ? undefined
      : parseNumberOption("--max-new-tokens", values["max-new-tokens"], 0, isPositiveInt, "a positive integer");
  const workers =
    values.workers === "auto" ? "auto" : parseNumberOption("--workers", values.workers, 1, isPositiveInt, "a positive integer or auto");
  const generative = metrics.filter((m): m is GenerationMetric => m !== "perplexity");
  const rows = readJsonl(dataFile); // validate the data before the (slower) model load
  const pairs = rows.map((row) => {
    const { prompt, completion } = row.value;
    if (generative.length && (typeof prompt !== "string" || typeof completion !== "string")) {
      throw new UserError(
        `${dataFile}:${row.line}: --metrics ${generative.join(",")} needs "prompt" and "completion" strings in every row`,
      );
    }
    return { prompt: prompt as string, completion: completion as string };
  });
  const loaded = await prepareModel(modelRef, values.backend, quantize);
  const context = loaded.config.maxPositions;
  if (maxLength !== undefined && maxLength > context) {
    throw invalid("", "--max-length", `an integer in 2…${context} (the model's context, max_position_embeddings)`, values["max-length"]);
  }
  const window = maxLength ?? context;
  if (stride !== undefined && stride > window) {
    const what = maxLength === undefined ? "the model's context, max_position_embeddings" : "--max-length";
    throw invalid("", "--stride", `an integer in 1…${window} (${what})`, values.stride);
  }
  const ctx = { file: dataFile, tokenizer: loaded.tokenizer, vocabSize: loaded.config.vocabSize };
  const examples = rows.map((row) => rowToExample(ctx, row));
  const model = await withAdapter(loaded, values.adapter);
  const report: Record<string, number> = {};
  const threads = await withEvalThreads(model, { workers }, async (threads) => {
    // What the report says: the most threads any metric ran on.
    let used = { workers: 1, why: "" };
    const noteThreads = () => {
      if (threads.parallelism.workers >= used.workers) used = { ...threads.parallelism };
    };
    if (metrics.includes("perplexity")) {
      const result = await perplexityOn(threads, examples, { batchSize, stride, maxLength });
      noteThreads();
      Object.assign(report, { loss: result.loss, perplexity: result.perplexity, tokens: result.tokens });
    }
    if (generative.length) {
      if (!loaded.tokenizer) throw new UserError(`${loaded.dir}: generation metrics need tokenizer.json`);
      const { examples: _generated, ...scores } = await generationScoresOn(threads, loaded.tokenizer, pairs, generative, {
        maxNewTokens,
        eosTokenIds: loaded.eosTokenIds,
      });
      noteThreads();
      Object.assign(report, scores);
    }
    return used;
  }).catch((e: unknown) => {
    if (!(e instanceof NonFiniteLossError)) throw e;
    // Divergence, not bad input: exit 3, as `train` does.
    console.error(`loralab eval: ${e.message}`);
    return undefined;
  });
  if (!threads) return 3;
  reportBackend(Boolean(values.json), loaded);
  if (values.json) printJson({ ...report, workers: threads.workers });
  else {
    console.error(`threads: ${threads.workers} (${threads.why}; --workers)`);
    if (report.perplexity !== undefined)
      console.log(
        `perplexity ${report.perplexity.toFixed(4)} (loss ${report.loss!.toFixed(6)} over ${report.tokens} tokens, ${examples.length} rows)`,
      );
    for (const m of generative) console.log(`${m} ${report[m]!.toFixed(2)}`);
  }
  return 0;
}
