/**
 * A study: trials (plain data, trial.ts) run by an executor and recorded in the run registry. A trial the
 * registry already holds (same digest: same model, data, options, seed and loralab version) is not trained again,
 * so a re-submitted study runs only what is missing, whichever executor ran the rest.
 */
import { runsDirectory } from "./registry.js";
import type { Executor, TrialEvent } from "./executor.js";
import { findTrial, recordTrial } from "./trial-store.js";
import type { TrialRecord, TrialSpec } from "./trial.js";

export type StudyEvent = TrialEvent | { type: "cached"; digest: string; record: TrialRecord } | { type: "recorded"; record: TrialRecord };

export interface StudyOptions {
  /** The study's name (recorded with each trial). */
  name: string;
  executor: Executor;
  /** Registry folder (default runs/ or LORALAB_RUNS_DIR); false: record nothing and reuse nothing. */
  runsDir?: string | false;
  /** Train every trial again, even those the registry holds. */
  fresh?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: StudyEvent) => void;
}

/** A trial that did not finish, as the table shows it. */
export function failedRecord(spec: TrialSpec, error: string): TrialRecord {
  return {
    digest: spec.digest,
    config: spec.config,
    seed: spec.seed,
    status: "failed",
    error,
    trainableParams: 0,
    allParams: 0,
    finalLoss: null,
    metrics: {},
    wallSeconds: 0,
    peakTensorMiB: 0,
    history: [],
  };
}

/** Runs the study; one record per trial, in the trials' order (failed trials carry their error). */
export async function runStudy(trials: readonly TrialSpec[], options: StudyOptions): Promise<TrialRecord[]> {
  const root = runsDirectory(options.runsDir);
  const emit = (e: StudyEvent) => options.onEvent?.(e);
  const byDigest = new Map(trials.map((t) => [t.digest, t]));
  const results = new Map<string, TrialRecord>();
  for (const spec of byDigest.values()) {
    const cached = root && !options.fresh ? findTrial(root, spec.digest) : undefined;
    if (!cached) continue;
    // The record as this study names it (another study may have run the same trial under another grid label).
    const record = { ...cached, config: spec.config };
    results.set(spec.digest, record);
    emit({ type: "cached", digest: spec.digest, record });
  }
  const missing = [...byDigest.values()].filter((t) => !results.has(t.digest));
  const recording: Promise<void>[] = [];
  const report = (e: TrialEvent) => {
    emit(e);
    const spec = byDigest.get(e.digest);
    if (!spec || results.has(e.digest)) return;
    if (e.type === "failed") results.set(e.digest, failedRecord(spec, e.error));
    if (e.type !== "completed") return;
    const outcome = { ...e.outcome, record: { ...e.outcome.record, config: spec.config } };
    results.set(e.digest, outcome.record);
    if (!root) return;
    recording.push(
      recordTrial(root, spec, outcome, options.name).then((record) => {
        results.set(e.digest, record);
        emit({ type: "recorded", record });
      }),
    );
  };
  try {
    if (missing.length) await options.executor.run(missing, report, options.signal);
  } finally {
    // What finished is kept, also when the study stops early: a re-run starts from there.
    await Promise.all(recording);
  }
  return trials.map((t) => results.get(t.digest) ?? failedRecord(t, "the trial did not run"));
}
