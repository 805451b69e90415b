/**
 * The trial runner: what every executor runs for one trial (in the submitting process, in a local worker
 * process, in a `loralab worker` pulling from a queue). It builds the data from its recipe (and checks the rows
 * against the submitted fingerprint), adds the trial's adapter to a pooled model, trains, evaluates, and returns
 * the trial's record and its adapter's PEFT files. The same spec gives the same numbers wherever it runs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { ERROR_KIND, type ErrorKind } from "../runtime/kernel.js";
import { UserError } from "../core/errors.js";
import type { Dataset } from "../data/dataset.js";
import { replayRecipe } from "../data/replay.js";
import { saveAdapter } from "../lora/adapter-io.js";
import { evaluate, type EvalScores } from "../metrics/evaluate.js";
import { withEvalThreads } from "../train/eval-threads.js";
import { trainableSummary } from "../nn/module.js";
import { LoraTrainable } from "../train/trainable.js";
import { type StepLog, Trainer } from "../train/trainer.js";
import { checkTrainingRows } from "../train/training-data.js";
import type { ModelPool } from "./model-pool.js";
import type { DataRef, TrialRecord, TrialSpec } from "./trial.js";

/** A trial's result: its record and its adapter's files (name → base64), small enough to travel in a job. */
export interface TrialOutcome {
  record: TrialRecord;
  adapter: Record<string, string>;
}

export interface TrialEnvironment {
  pool: ModelPool;
  signal?: AbortSignal;
  onStep?: (log: StepLog, totalSteps: number) => void;
}

/** A trial stopped by its signal before its last step (the trial is not done; another run starts it over). */
export class TrialCancelled extends Error {
  override name = "TrialCancelled";
  readonly [ERROR_KIND]: ErrorKind = "interrupt";
  constructor(message = "the trial was stopped before its last step") {
    super(message);
  }
}

/** The dataset a trial names, built here and checked to be the rows the submitter saw. */
export function buildData(ref: DataRef, what: string): Dataset {
  const ds = replayRecipe(ref.recipe, `${what} recipe`);
  if (ds.fingerprint() !== ref.fingerprint)
    throw new UserError(
      `${what}: ${ds.source} gives other rows here (${ds.length} rows, fingerprint ${ds.fingerprint().slice(0, 12)}) than where the trial was made (${ref.rows} rows, ${ref.fingerprint.slice(0, 12)}); a file must be the same on every machine`,
    );
  return ds;
}

async function adapterFiles(save: (dir: string) => Promise<void>): Promise<Record<string, string>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loralab-trial-"));
  try {
    await save(path.join(dir, "adapter"));
    const files: Record<string, string> = {};
    for (const name of fs.readdirSync(path.join(dir, "adapter")))
      files[name] = fs.readFileSync(path.join(dir, "adapter", name)).toString("base64");
    return files;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let counter = 0;

export async function runTrial(spec: TrialSpec, env: TrialEnvironment): Promise<TrialOutcome> {
  const started = performance.now();
  const pooled = await env.pool.acquire(spec.model);
  const { loaded, peft } = pooled;
  const name = `trial_${spec.digest.slice(0, 12)}_${++counter}`;
  const before = peft.activeAdapters;
  try {
    const vocab = { vocabSize: loaded.config.vocabSize };
    const examples = buildData(spec.data, "data").toExamples(loaded.tokenizer, vocab);
    const evalData = spec.eval && buildData(spec.eval.data, "eval data");
    peft.addAdapter(name, { ...spec.lora, baseModelNameOrPath: spec.model }, { seed: spec.seed });
    peft.setAdapter(name);
    const startBytes = tf.memory().numBytes;
    const trainer = new Trainer(new LoraTrainable(peft), examples, { ...spec.train, seed: spec.seed, signal: env.signal });
    const parameters = trainableSummary(peft.parametersOf(name));
    let extraBytes = 0;
    trainer.on((e) => {
      if (e.type !== "step") return;
      extraBytes = Math.max(extraBytes, tf.memory().numBytes - startBytes);
      env.onStep?.(e.log, trainer.totalSteps);
    });
    let result;
    try {
      checkTrainingRows(examples, trainer.options.maxLength);
      result = await trainer.train();
    } finally {
      trainer.dispose();
    }
    if (result.reason === "cancelled") throw new TrialCancelled(`trial stopped at step ${result.steps}/${result.totalSteps}`);
    if (result.reason === "diverged") throw new UserError(`training diverged: ${result.message}`);
    const input = evalData && { examples: () => evalData.toExamples(loaded.tokenizer, vocab), rows: () => evalData.rows() };
    const generation = { tokenizer: loaded.tokenizer, eosTokenIds: loaded.eosTokenIds };
    // On the cores this trial may use (LORALAB_CORES when trials run side by side): the numbers are one thread's either way.
    const scores: EvalScores = input
      ? await withEvalThreads(peft, { workers: "auto" }, (threads) => evaluate(threads, input, spec.eval!.metrics, generation))
      : {};
    const { examples: _examples, tokens: _tokens, ...metrics } = scores;
    const record: TrialRecord = {
      digest: spec.digest,
      config: spec.config,
      seed: spec.seed,
      status: "completed",
      trainableParams: parameters.trainable,
      allParams: parameters.all,
      finalLoss: result.history.at(-1)?.loss ?? null,
      metrics: metrics as Record<string, number>,
      wallSeconds: (performance.now() - started) / 1000,
      peakTensorMiB: (4 * parameters.all + extraBytes) / 2 ** 20,
      history: result.history,
    };
    return { record, adapter: await adapterFiles((dir) => saveAdapter(peft, dir, name)) };
  } finally {
    if (peft.adapters.has(name)) peft.deleteAdapter(name);
    if (before.length) peft.setAdapter(before);
    env.pool.release(spec.model, pooled);
  }
}
