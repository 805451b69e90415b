/**
 * `loralab train`: LoRA (or full) fine-tuning from the command line, e.g.
 *   loralab train --model DIR --data train.jsonl --lora r=8,alpha=16,targets=q_proj+v_proj --steps 100 --out adapter/
 */
import { UserError } from "../core/errors.js";
import { readJsonl } from "../data/jsonl.js";
import { rowToExample } from "../data/rows.js";
import { loadAdapter } from "../lora/adapter-io.js";
import { parseLoraSpec } from "../lora/config.js";
import { PeftModel } from "../lora/peft-model.js";
import { saveModelDirectory } from "../models/save.js";
import { countParameters } from "../nn/module.js";
import { SCHEDULES, type ScheduleName } from "../train/schedule.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../train/trainable.js";
import { Trainer, type StepLog } from "../train/trainer.js";
import { isNonNegativeInt, isPositiveInt, parseCommandArgs, parseNumberOption, requireOption } from "./args.js";
import { backendOption, prepareModel, printJson, reportBackend } from "./common.js";

/** One-line progress on a terminal, redrawn in place. */
function progressLine(log: StepLog, total: number): string {
  const eta = ((total - log.step) * log.elapsedSeconds) / log.step;
  return `step ${log.step}/${total}  loss ${log.loss.toFixed(4)}  lr ${log.lr.toExponential(2)}  grad ${log.gradNorm.toFixed(3)}  ${log.tokensPerSecond.toFixed(0)} tok/s  ETA ${eta.toFixed(0)}s`;
}

export async function train(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption,
    model: { type: "string" },
    adapter: { type: "string" },
    data: { type: "string" },
    lora: { type: "string" },
    full: { type: "boolean" },
    steps: { type: "string" },
    epochs: { type: "string" },
    lr: { type: "string" },
    batch: { type: "string" },
    "grad-accum": { type: "string" },
    warmup: { type: "string" },
    schedule: { type: "string" },
    "weight-decay": { type: "string" },
    "max-grad-norm": { type: "string" },
    seq: { type: "string" },
    seed: { type: "string" },
    "no-shuffle": { type: "boolean" },
    out: { type: "string" },
    json: { type: "boolean" },
  });
  const modelRef = requireOption(values.model, "--model");
  const dataFile = requireOption(values.data, "--data");
  if (values.full && (values.lora || values.adapter))
    throw new UserError("--full trains every weight; it cannot be combined with --lora or --adapter");
  if (values.adapter && values.lora) throw new UserError("--adapter continues a saved adapter with its own config; drop --lora");
  if (values.steps && values.epochs) throw new UserError("give --steps or --epochs, not both");
  const schedule = (values.schedule ?? "linear") as ScheduleName;
  if (!SCHEDULES.includes(schedule)) throw new UserError(`--schedule: expected one of ${SCHEDULES.join(", ")}, got "${values.schedule}"`);
  const nonNegative = (n: number) => Number.isFinite(n) && n >= 0;
  const args = {
    maxSteps: values.steps === undefined ? undefined : parseNumberOption("--steps", values.steps, 0, isPositiveInt, "a positive integer"),
    epochs: parseNumberOption("--epochs", values.epochs, 1, (n) => n > 0, "a positive number"),
    lr: parseNumberOption("--lr", values.lr, 2e-4, (n) => n > 0, "a positive number"),
    batchSize: parseNumberOption("--batch", values.batch, 8, isPositiveInt, "a positive integer"),
    gradAccum: parseNumberOption("--grad-accum", values["grad-accum"], 1, isPositiveInt, "a positive integer"),
    warmupSteps: parseNumberOption("--warmup", values.warmup, 0, isNonNegativeInt, "a non-negative integer"),
    weightDecay: parseNumberOption("--weight-decay", values["weight-decay"], 0, nonNegative, "a number ≥ 0"),
    maxGradNorm: parseNumberOption("--max-grad-norm", values["max-grad-norm"], 1, nonNegative, "a number ≥ 0 (0 = off)"),
    maxLength: parseNumberOption("--seq", values.seq, 0, isPositiveInt, "a positive integer"),
    seed: parseNumberOption("--seed", values.seed, 42, Number.isInteger, "an integer"),
    shuffle: !values["no-shuffle"],
    schedule,
  };
  const loraConfig = values.lora ? parseLoraSpec(values.lora) : {};
  const rows = readJsonl(dataFile);
  const quiet = Boolean(values.json);
  const loaded = await prepareModel(modelRef, values.backend);
  const ctx = { file: dataFile, tokenizer: loaded.tokenizer, vocabSize: loaded.config.vocabSize };
  const examples = rows.map((row) => rowToExample(ctx, row));

  reportBackend(quiet);
  let trainable: Trainable;
  if (values.full) trainable = new FullTrainable(loaded.model, args.seed);
  else {
    const peft = values.adapter
      ? await loadAdapter(loaded.model, values.adapter, { trainable: true, seed: args.seed })
      : PeftModel.create(loaded.model, { baseModelNameOrPath: modelRef, ...loraConfig }, { seed: args.seed });
    trainable = new LoraTrainable(peft);
  }
  const abort = new AbortController(); // Ctrl-C stops at the next step boundary; --out still gets the weights so far
  const trainer = new Trainer(trainable, examples, { ...args, signal: abort.signal });
  const trainableCount = trainable.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
  const allCount = countParameters(trainable.model);
  if (!quiet)
    console.error(
      `trainable params: ${trainableCount.toLocaleString("en-US")} || all params: ${allCount.toLocaleString("en-US")} || trainable%: ${((100 * trainableCount) / allCount).toFixed(4)}`,
    );
  const tty = process.stderr.isTTY && !quiet;
  trainer.on((e) => {
    if (e.type !== "step" || quiet) return;
    if (tty) process.stderr.write(`\r${progressLine(e.log, trainer.totalSteps)}\x1b[K`);
    else console.error(progressLine(e.log, trainer.totalSteps));
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
      steps: result.history.map((s) => ({ step: s.step, loss: s.loss, lr: s.lr, grad_norm: s.gradNorm })),
      trainable_params: trainableCount,
      all_params: allCount,
      adapter_dir: values.out ?? null,
      stopped: result.reason,
      ...(result.message ? { message: result.message } : {}),
    });
  } else {
    console.log(
      `${result.reason}: ${result.steps}/${result.totalSteps} steps, final loss ${result.history.at(-1)?.loss.toFixed(4) ?? "n/a"}${values.out ? `, saved to ${values.out}` : ""}`,
    );
  }
  if (result.reason === "diverged") {
    console.error(`loralab train: training diverged: ${result.message}`);
    return 3;
  }
  return result.reason === "cancelled" ? 130 : 0;
}
