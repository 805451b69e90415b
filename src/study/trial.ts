/**
 * A trial of a study as plain data: which model, which data (a recipe and the rows' fingerprint), which LoRA
 * config, training options, evaluation and seed. It crosses process and machine boundaries as JSON (a BullMQ
 * job, a message to a local worker process) and its digest is its identity: the job id, the registry key, the
 * cache key. Two trials with the same digest train the same thing and give the same numbers.
 */
import { digestOf, notPlainData } from "../core/canonical.js";
import { check, Fields, invalid, listOf, nonEmptyString, string } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { packageVersion } from "../core/package.js";
import type { Dataset } from "../data/dataset.js";
import { checkRecipe, type DatasetRecipe } from "../data/recipe.js";
import { type LoraConfig, type LoraConfigInput, resolveLoraConfig } from "../lora/config.js";
import { isMetric, type Metric, METRICS } from "../metrics/evaluate.js";
import { resolveTrainingOptions, type TrainingOptions } from "../train/arguments.js";
import type { StepLog } from "../train/trainer.js";

/** Data as a trial carries it: how to build it, and the digest of the rows it must give. */
export interface DataRef {
  recipe: DatasetRecipe;
  fingerprint: string;
  rows: number;
}

export interface TrialSpec {
  /** The loralab version that made the trial (a worker of another version could compute other numbers). */
  version: string;
  /** The grid point it came from, without the seed: what tables show and group by. */
  config: Record<string, unknown>;
  /** A shipped model's name, a model directory (absolute) or a hub id. */
  model: string;
  data: DataRef;
  lora: LoraConfig;
  /** Training options as given (the seed is `seed`). */
  train: TrainingOptions;
  eval?: { data: DataRef; metrics: Metric[] };
  seed: number;
  /** sha256 of everything above but `config` (a grid point's spelling does not change what trains). */
  digest: string;
}

/** What a finished (or failed) trial reports; what the registry keeps and tables show. */
export interface TrialRecord {
  digest: string;
  config: Record<string, unknown>;
  seed: number;
  status: "completed" | "failed";
  /** Why it failed. */
  error?: string;
  trainableParams: number;
  allParams: number;
  finalLoss: number | null;
  /** Eval metrics (perplexity, loss, bleu, …). */
  metrics: Record<string, number>;
  wallSeconds: number;
  peakTensorMiB: number;
  history: StepLog[];
  /** Its folder in the run registry. */
  runId?: string;
}

/** What a trial's input may hold; everything is checked by makeTrial. */
export interface TrialInput {
  config: Record<string, unknown>;
  model: string;
  data: Dataset;
  lora: LoraConfigInput;
  train: TrainingOptions;
  eval?: { data: Dataset; metrics: readonly string[] };
  seed: number;
}

export function dataRef(ds: Dataset): DataRef {
  return { recipe: ds.recipe(), fingerprint: ds.fingerprint(), rows: ds.length };
}

/** The digest of a spec: its content (not its grid-point label) and the loralab version. */
function identity(spec: Omit<TrialSpec, "digest"> & { digest?: string }): string {
  const { config: _label, digest: _digest, ...content } = spec;
  // `workers` says how to compute, not what: threads give the same numbers to float rounding, so it is no part of a trial's identity.
  const { workers: _threads, ...train } = resolveTrainingOptions({ ...content.train, seed: content.seed }, { where: "train options" });
  return digestOf({ ...content, train }, "trial");
}

const label = (config: Record<string, unknown>) =>
  Object.entries(config)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(", ") || "(no grid)";

/**
 * A trial from its parts, checked where it is made (the submitting side), so that a closure, a bad option or a
 * bad metric is an error naming the field before anything is queued.
 */
export function makeTrial(input: TrialInput): TrialSpec {
  const where = `trial ${label(input.config)}`;
  const { data: _d, eval: evaluation, ...plain } = input;
  const why = notPlainData({ ...plain, metrics: evaluation?.metrics }, "trial");
  if (why) throw new UserError(`${where}: ${why.replace(/^trial\./, "")}`);
  if (typeof input.model !== "string" || input.model === "")
    throw invalid(where, "model", "a model name, directory or hub id", input.model);
  const lora = resolveLoraConfig(input.lora, `${where}: lora`);
  resolveTrainingOptions({ ...input.train, seed: input.seed }, { where: `${where}: train options` });
  const metrics = evaluation ? [...evaluation.metrics] : [];
  const unknown = metrics.find((m) => !isMetric(m));
  if (unknown !== undefined) throw invalid(where, "eval.metrics", `metrics among ${METRICS.join(", ")}`, unknown);
  const spec: Omit<TrialSpec, "digest"> = {
    version: packageVersion(),
    config: input.config,
    model: input.model,
    data: dataRef(input.data),
    lora,
    train: input.train,
    ...(evaluation ? { eval: { data: dataRef(evaluation.data), metrics: metrics as Metric[] } } : {}),
    seed: input.seed,
  };
  return { ...spec, digest: identity(spec) };
}

const record = check<Record<string, unknown>>("an object", (v) => typeof v === "object" && v !== null && !Array.isArray(v));

function checkDataRef(value: unknown, where: string): DataRef {
  const fields = Fields.of(where, value);
  return {
    recipe: checkRecipe(fields.raw.recipe, `${where}: recipe`),
    fingerprint: fields.required("fingerprint", nonEmptyString),
    rows: fields.required("rows", check<number>("a row count", Number.isInteger)),
  };
}

/**
 * A trial received as JSON (a job, a message), checked field by field; a trial made by another loralab version,
 * or whose content does not match its digest, is refused.
 */
export function checkTrialSpec(value: unknown, where = "trial"): TrialSpec {
  const fields = Fields.of(where, value);
  const version = fields.required("version", string);
  if (version !== packageVersion())
    throw new UserError(
      `${where}: made by loralab ${version}, this process runs loralab ${packageVersion()}; run the same version everywhere`,
    );
  const evaluation = fields.optional("eval", record, undefined);
  const evalFields = evaluation && Fields.of(`${where}: eval`, evaluation);
  const spec: TrialSpec = {
    version,
    config: fields.required("config", record),
    model: fields.required("model", nonEmptyString),
    data: checkDataRef(fields.raw.data, `${where}: data`),
    lora: resolveLoraConfig(fields.required("lora", record) as LoraConfigInput, `${where}: lora`),
    train: fields.required("train", record) as TrainingOptions,
    ...(evalFields
      ? {
          eval: {
            data: checkDataRef(evalFields.raw.data, `${where}: eval.data`),
            metrics: evalFields.required("metrics", listOf(check<Metric>("a metric", isMetric))),
          },
        }
      : {}),
    seed: fields.required("seed", check<number>("an integer", Number.isInteger)),
    digest: fields.required("digest", nonEmptyString),
  };
  if (identity(spec) !== spec.digest) throw new UserError(`${where}: digest: ${spec.digest} is not the digest of the trial's content`);
  return spec;
}
