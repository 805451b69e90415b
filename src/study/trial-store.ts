/**
 * Trials in the run registry: a finished trial is the run runs/trial-<digest>/ (config.json, data.json,
 * metrics.jsonl, adapter/, summary.json, and trial.json, its record). Its digest names it, so any sweep that
 * contains the same trial finds it there and does not train it again.
 */
import * as path from "node:path";
import { RunFolder } from "./run-folder.js";
import type { TrialOutcome } from "./runner.js";
import type { TrialRecord, TrialSpec } from "./trial.js";

export function trialRunId(digest: string): string {
  return `trial-${digest.slice(0, 20)}`;
}

/** The finished trial with this digest, if the registry holds it. */
export function findTrial(root: string, digest: string): TrialRecord | undefined {
  const folder = new RunFolder(path.join(root, trialRunId(digest)));
  const record = folder.readJson("trial.json") as TrialRecord | undefined;
  if (record?.digest !== digest || record.status !== "completed" || !folder.readJson("summary.json")) return undefined;
  return { ...record, runId: folder.id };
}

/** Records a finished trial as a run (summary.json last: a run is listed once it is complete). */
export async function recordTrial(root: string, spec: TrialSpec, outcome: TrialOutcome, sweep: string): Promise<TrialRecord> {
  const folder = new RunFolder(path.join(root, trialRunId(spec.digest)));
  const record: TrialRecord = { ...outcome.record, runId: folder.id };
  const last = record.history.at(-1);
  await folder.writeJson("config.json", {
    kind: "lora",
    base: spec.model,
    lora: spec.lora,
    train: { ...spec.train, seed: spec.seed },
    eval: spec.eval?.metrics,
    sweep,
    grid: spec.config,
    digest: spec.digest,
    version: spec.version,
  });
  await folder.writeJson("data.json", { train: spec.data, ...(spec.eval ? { eval: spec.eval.data } : {}) });
  await folder.writeMetrics(record.history);
  await folder.writeAdapter(Object.fromEntries(Object.entries(outcome.adapter).map(([name, b64]) => [name, Buffer.from(b64, "base64")])));
  await folder.writeJson("trial.json", record);
  await folder.writeJson("summary.json", {
    id: folder.id,
    kind: "lora",
    status: "completed",
    steps: last?.step ?? 0,
    total_steps: last?.step ?? 0,
    final_loss: record.finalLoss,
    trainable_params: record.trainableParams,
    all_params: record.allParams,
    metrics: record.metrics,
    started: new Date(Date.now() - record.wallSeconds * 1000).toISOString(),
    elapsed_seconds: last?.elapsedSeconds ?? 0,
    peak_tensor_bytes: record.peakTensorMiB * 2 ** 20,
    sweep,
    digest: spec.digest,
  });
  return record;
}
