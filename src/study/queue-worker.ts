/**
 * `loralab worker`: pulls trials from the BullMQ queue, runs them with the same runner as every other executor,
 * reports each step as job progress and returns the trial's record and adapter files as the job's result.
 *
 * - A trial that fails for a user error (a bad config) fails at once (UnrecoverableError: no retries).
 * - A worker that dies (kill -9, a lost machine) stops renewing its job's lock; once `stallSeconds` pass, BullMQ
 *   hands the job to another worker.
 * - shutdown() stops taking trials and lets the running ones finish; after `graceSeconds` (or a second call) it
 *   stops them at their next step and returns them to the queue for another worker.
 */
import { UnrecoverableError, WaitingError, Worker } from "bullmq";
import { isUserError } from "../core/errors.js";
import { failureText } from "./executor.js";
import { ModelPool } from "./model-pool.js";
import { checkReachable, parseRedisUrl, QUEUE_NAME } from "./redis.js";
import { runTrial, TrialCancelled, type TrialOutcome } from "./runner.js";
import { checkTrialSpec, type TrialSpec } from "./trial.js";

export interface WorkerOptions {
  url: string;
  /** Trials at once in this process, each on its own copy of the model. */
  concurrency?: number;
  backend?: string;
  /** How long a silent worker keeps its trial before BullMQ gives it to another (default 30). */
  stallSeconds?: number;
  /** How long shutdown() lets running trials finish before returning them to the queue (default 60). */
  graceSeconds?: number;
  log?: (line: string) => void;
}

export interface TrialWorker {
  /** The URL served, password masked. */
  readonly shown: string;
  /** Resolves when the worker has stopped. */
  readonly closed: Promise<void>;
  shutdown(): void;
}

const label = (spec: TrialSpec) =>
  `${spec.digest.slice(0, 12)} (${Object.entries({ ...spec.config, seed: spec.seed })
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(", ")})`;

export async function startWorker(options: WorkerOptions): Promise<TrialWorker> {
  const { concurrency = 1, stallSeconds = 30, graceSeconds = 60, log = () => {} } = options;
  const target = parseRedisUrl(options.url);
  await checkReachable(target);
  const pool = new ModelPool(options.backend);
  const worker = new Worker<unknown, TrialOutcome>(
    QUEUE_NAME,
    async (job, token, signal) => {
      let spec: TrialSpec;
      try {
        spec = checkTrialSpec(job.data, `trial ${job.id}`);
      } catch (e) {
        log(`trial ${job.id}: refused: ${failureText(e)}`);
        throw new UnrecoverableError(failureText(e));
      }
      log(`trial ${label(spec)}: started${job.attemptsStarted > 1 ? ` (attempt ${job.attemptsStarted})` : ""}`);
      try {
        const outcome = await runTrial(spec, {
          pool,
          signal,
          onStep: (step, totalSteps) => void job.updateProgress({ step: step.step, loss: step.loss, totalSteps }).catch(() => {}),
        });
        log(`trial ${label(spec)}: completed, final loss ${outcome.record.finalLoss?.toFixed(4)}`);
        return outcome;
      } catch (e) {
        if (e instanceof TrialCancelled) {
          log(`trial ${label(spec)}: returned to the queue (${e.message})`);
          await job.moveToWait(token);
          throw new WaitingError();
        }
        log(`trial ${label(spec)}: failed: ${failureText(e)}`);
        throw isUserError(e) ? new UnrecoverableError(failureText(e)) : e;
      }
    },
    {
      connection: { ...target.options, maxRetriesPerRequest: null },
      concurrency,
      lockDuration: stallSeconds * 1000,
      stalledInterval: (stallSeconds * 1000) / 2,
      maxStalledCount: 2,
    },
  );
  worker.on("error", (e) => log(`queue error: ${e.message}`));
  await worker.waitUntilReady();
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<void>((resolve) => worker.on("closed", () => resolve()));
  return {
    shown: target.shown,
    closed: closed.then(() => {
      clearTimeout(timer);
      pool.dispose();
    }),
    shutdown() {
      if (stopping) {
        worker.cancelAllJobs("shutdown");
        return;
      }
      stopping = true;
      timer = setTimeout(() => worker.cancelAllJobs("shutdown"), graceSeconds * 1000);
      void worker.close();
    },
  };
}
