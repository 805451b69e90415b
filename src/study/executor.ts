/**
 * Executors run a study's missing trials and report as they go. Three run the same trial runner (runner.ts):
 * in this process (inline), in local worker processes (processes.ts) and on `loralab worker`s fed by a BullMQ
 * queue (queue.ts). The study (study.ts) records what they return; an executor records nothing itself.
 */
import { isUserError } from "../core/errors.js";
import type { ModelPool } from "./model-pool.js";
import { runTrial, TrialCancelled, type TrialOutcome } from "./runner.js";
import type { TrialSpec } from "./trial.js";

export type TrialEvent =
  | { type: "started"; digest: string }
  | { type: "step"; digest: string; step: number; loss: number; totalSteps: number }
  | { type: "completed"; digest: string; outcome: TrialOutcome }
  | { type: "failed"; digest: string; error: string };

export interface Executor {
  /** What the executor is, for progress lines: "this process", "2 local worker processes", "redis://host:6379/0". */
  readonly description: string;
  /** Runs every trial to completion or failure, reporting through `report`; rejects only when the study must stop. */
  run(trials: readonly TrialSpec[], report: (e: TrialEvent) => void, signal?: AbortSignal): Promise<void>;
}

/** A failure as a table shows it: a user error's message, else the error's name too (a bug). */
export function failureText(e: unknown): string {
  if (isUserError(e)) return e.message;
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Trials one after another in this process. */
export function inlineExecutor(pool: ModelPool): Executor {
  return {
    description: "this process",
    async run(trials, report, signal) {
      for (const spec of trials) {
        if (signal?.aborted) throw new TrialCancelled("the study was stopped");
        report({ type: "started", digest: spec.digest });
        const onStep = (log: { step: number; loss: number }, totalSteps: number) =>
          report({ type: "step", digest: spec.digest, step: log.step, loss: log.loss, totalSteps });
        try {
          report({ type: "completed", digest: spec.digest, outcome: await runTrial(spec, { pool, signal, onStep }) });
        } catch (e) {
          if (e instanceof TrialCancelled) throw e;
          report({ type: "failed", digest: spec.digest, error: failureText(e) });
        }
      }
    },
  };
}
