/**
 * `loralab train`: LoRA (or full) fine-tuning from the command line, e.g.
 *   loralab train --model DIR --data train.jsonl --lora r=8,alpha=16,targets=q_proj+v_proj --steps 100 --out adapter/
 */
import { invalid } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { readJsonl } from "../data/jsonl.js";
import { rowToExample } from "../data/rows.js";
import { loadAdapter } from "../lora/adapter-io.js";
import { parseLoraSpec } from "../lora/config.js";
import { PeftModel } from "../lora/peft-model.js";
import type { LoadedModel } from "../models/load.js";
import { saveModelDirectory } from "../models/save.js";
import { trainableSummary } from "../nn/module.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../train/trainable.js";
import { type EvalLog, Trainer, type StepLog } from "../train/trainer.js";
import { parseCommandArgs, requireOption } from "./args.js";
import { backendOption, prepareModel, printJson, quantizeFlag, quantizeOption, reportBackend } from "./common.js";
import { formatBytes } from "../backend/memory.js";
import { memoryReport } from "../train/run-memory.js";
import type { QuantizeFormat } from "../quant/frozen-weight.js";
import { trainingFlags, trainingFlagsHelp, trainingOptionsFromFlags } from "./training-flags.js";

/** One-line progress on a terminal, redrawn in place. */
function progressLine(log: StepLog, total: number): string {
  const eta = ((total - log.step) * log.elapsedSeconds) / log.step;
  return `step ${log.step}/${total}  loss ${log.loss.toFixed(4)}  lr ${log.lr.toExponential(2)}  grad ${log.gradNorm.toFixed(3)}  ${log.tokensPerSecond.toFixed(0)} tok/s  ETA ${eta.toFixed(0)}s`;
}

const evalLine = (log: EvalLog) => `eval at step ${log.step}: loss ${log.evalLoss.toFixed(4)}  perplexity ${log.evalPerplexity.toFixed(3)}`;

const usage = `usage: loralab train --model DIR|ID --data FILE.jsonl [--lora SPEC | --adapter DIR | --full] [options] [--out DIR] [--json]

  --lora r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05,bias=none,dora=false,rslora=false
  --adapter DIR              continue training a saved PEFT adapter
  --full                     train every weight (--out then writes a full checkpoint)
  --quantize nf4|nf4-dq|f16|bf16   store the frozen base's decoder projections compactly
  --qlora                    QLoRA: --quantize nf4-dq and LoRA on every linear layer (unless --lora names targets)
  --eval-data FILE.jsonl     rows to evaluate (perplexity) every --eval-steps steps and at the end
  --checkpoint-dir DIR       where --save-strategy writes checkpoint-N/ folders
  --out DIR                  the trained adapter (or model) at the end

training options:
${trainingFlagsHelp().join("\n")}`;

/** How the frozen base is stored: --quantize, or NF4 with double quantization for --qlora. */
function baseStorage(values: { quantize?: string; qlora?: boolean; full?: boolean }): QuantizeFormat | undefined {
  const quantize = quantizeFlag(values.quantize);
  if (values.full && (quantize || values.qlora))
    throw new UserError(
      `--full trains every weight; it cannot be combined with ${values.qlora ? "--qlora" : "--quantize"} (compact weights are frozen)`,
    );
  if (values.qlora && quantize && quantize !== "nf4" && quantize !== "nf4-dq")
    throw new UserError(`--qlora stores the base in NF4; --quantize ${quantize} contradicts it (use nf4 or nf4-dq, or drop --qlora)`);
  return quantize ?? (values.qlora ? "nf4-dq" : undefined);
}

/** What the run measured (see MemoryReport), in the JSON output's snake_case; the RSS peak is the process's own. */
function memoryJson(trainable: Trainable, trainer: Trainer) {
  const m = memoryReport(trainable.model, trainer.optimizer, trainer.history);
  return {
    weights: m.weights,
    optimizer_bytes: m.optimizerBytes,
    step_peak_bytes: m.activationPeakBytes,
    peak_tensor_bytes: m.peakTensorBytes,
    rss_peak_bytes: Math.max(m.rssBytes, process.resourceUsage().maxRSS * 1024),
  };
}

/** The rows of a JSONL file as token sequences for the model. */
function readExamples(file: string, loaded: LoadedModel) {
  const ctx = { file, tokenizer: loaded.tokenizer, vocabSize: loaded.config.vocabSize };
  return readJsonl(file).map((row) => rowToExample(ctx, row));
}

export async function train(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption,
    ...trainingFlags,
    model: { type: "string" },
    adapter: { type: "string" },
    data: { type: "string" },
    "eval-data": { type: "string" },
    lora: { type: "string" },
    full: { type: "boolean" },
    ...quantizeOption,
    qlora: { type: "boolean" },
    "checkpoint-dir": { type: "string" },
    out: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const modelRef = requireOption(values.model, "--model");
  const dataFile = requireOption(values.data, "--data");
  if (values.full && (values.lora || values.adapter))
    throw new UserError("--full trains every weight; it cannot be combined with --lora or --adapter");
  if (values.adapter && values.lora) throw new UserError("--adapter continues a saved adapter with its own config; drop --lora");
  const quantize = baseStorage(values);
  const flags = trainingOptionsFromFlags(values);
  const checkpointDir = values["checkpoint-dir"];
  if (flags.resolved.saveStrategy !== "no" && !checkpointDir)
    throw invalid("", "--checkpoint-dir", `a directory (--save-strategy ${flags.resolved.saveStrategy} writes checkpoints)`, checkpointDir);
  const loraConfig = values.lora ? parseLoraSpec(values.lora) : {};
  if (values.qlora && loraConfig.targets === undefined && loraConfig.targetModules === undefined) loraConfig.targets = "all-linear";
  const quiet = Boolean(values.json);
  const loaded = await prepareModel(modelRef, values.backend, quantize);
  const { given, resolved } = trainingOptionsFromFlags(values, loaded.config.maxPositions);
  const examples = readExamples(dataFile, loaded);
  const evalData = values["eval-data"] === undefined ? undefined : readExamples(values["eval-data"], loaded);

  let trainable: Trainable;
  if (values.full) trainable = new FullTrainable(loaded.model, resolved.seed);
  else {
    const peft = values.adapter
      ? await loadAdapter(loaded.model, values.adapter, { trainable: true, seed: resolved.seed })
      : PeftModel.create(loaded.model, { baseModelNameOrPath: modelRef, ...loraConfig }, { seed: resolved.seed, training: true });
    trainable = new LoraTrainable(peft);
  }
  const abort = new AbortController(); // Ctrl-C stops at the next step boundary; --out still gets the weights so far
  const trainer = new Trainer(trainable, examples, {
    ...given,
    evalData,
    outputDir: checkpointDir,
    signal: abort.signal,
    measureMemory: true,
  });
  const parameters = trainableSummary(trainable.model.namedParameters(), trainable.model.namedStoredWeights());
  reportBackend(quiet, loaded);
  if (!quiet) {
    console.error(parameters.text);
    const notice = trainer.data.cutNotice();
    if (notice) console.error(`notice: ${notice} (--seq)`);
    const { workers, why } = trainer.parallelism;
    console.error(`threads: ${workers} (${why}; --workers)`);
  }
  const tty = process.stderr.isTTY && !quiet;
  trainer.on((e) => {
    if (quiet) return;
    if (e.type === "step" && tty) process.stderr.write(`\r${progressLine(e.log, trainer.totalSteps)}\x1b[K`);
    else if (e.type === "step") console.error(progressLine(e.log, trainer.totalSteps));
    else if (e.type === "eval") console.error(`${tty ? "\n" : ""}${evalLine(e.log)}`);
  });
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  const result = await trainer.train();
  process.off("SIGINT", onSigint);
  if (tty) process.stderr.write("\n");
  if (values.out) {
    if (trainable.kind === "full") await saveModelDirectory(trainable.model, loaded.dir, values.out);
    else await trainable.save(values.out);
  }
  if (values.json) {
    printJson({
      steps: result.history.map((s) => ({
        step: s.step,
        loss: s.loss,
        lr: s.lr,
        grad_norm: s.gradNorm,
        tokens_per_second: s.tokensPerSecond,
      })),
      ...(evalData ? { evals: result.evals.map((e) => ({ step: e.step, loss: e.evalLoss, perplexity: e.evalPerplexity })) } : {}),
      trainable_params: parameters.trainable,
      all_params: parameters.all,
      memory: memoryJson(trainable, trainer),
      cut_rows: trainer.data.cutRows,
      workers: result.workers,
      adapter_dir: values.out ?? null,
      stopped: result.reason,
      ...(result.message ? { message: result.message } : {}),
    });
  } else {
    console.log(
      `${result.reason}: ${result.steps}/${result.totalSteps} steps, final loss ${result.history.at(-1)?.loss.toFixed(4) ?? "n/a"}${values.out ? `, saved to ${values.out}` : ""}`,
    );
    const m = memoryJson(trainable, trainer);
    console.log(
      `memory: tensors at most ${formatBytes(m.peak_tensor_bytes)} (a step added up to ${formatBytes(m.step_peak_bytes)}; optimizer state ${formatBytes(m.optimizer_bytes)}), process RSS peak ${formatBytes(m.rss_peak_bytes)}`,
    );
  }
  if (result.reason === "diverged") {
    console.error(`loralab train: training diverged: ${result.message}`);
    return 3;
  }
  return result.reason === "cancelled" ? 130 : 0;
}
