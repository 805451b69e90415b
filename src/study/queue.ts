/**
 * `queue: "redis://…"`: each missing trial becomes a BullMQ job whose id is the trial's digest, so submitting a
 * sweep twice (or two notebooks submitting the same trial) never duplicates work: the second add finds the first
 * job, running or finished. Results, failures and per-step progress come back through BullMQ's QueueEvents.
 */
import { Job, Queue, QueueEvents } from "bullmq";
import type { Executor } from "./executor.js";
import { checkReachable, parseRedisUrl, QUEUE_NAME } from "./redis.js";
import { TrialCancelled, type TrialOutcome } from "./runner.js";
import type { TrialSpec } from "./trial.js";

const WEEK = 7 * 24 * 3600;

/** Retries for failures that are not the trial's own (a user error fails at once, see queue-worker.ts). */
const ATTEMPTS = 3;

export function queueExecutor(url: string, { fresh = false }: { fresh?: boolean } = {}): Executor {
  const target = parseRedisUrl(url);
  return {
    description: target.shown,
    async run(trials, report, signal) {
      await checkReachable(target);
      const queue = new Queue<TrialSpec, TrialOutcome>(QUEUE_NAME, { connection: target.options });
      const events = new QueueEvents(QUEUE_NAME, { connection: target.options });
      const mine = new Set(trials.map((t) => t.digest));
      events.on("active", ({ jobId }) => {
        if (mine.has(jobId)) report({ type: "started", digest: jobId });
      });
      events.on("progress", ({ jobId, data }) => {
        const p = data as { step?: number; loss?: number; totalSteps?: number };
        if (mine.has(jobId) && typeof p.step === "number")
          report({ type: "step", digest: jobId, step: p.step, loss: p.loss ?? NaN, totalSteps: p.totalSteps ?? 0 });
      });
      let stopped: () => void = () => {};
      const aborted = new Promise<never>((_, reject) => {
        stopped = () => reject(new TrialCancelled("the study was stopped (its queued trials stay in the queue)"));
        signal?.addEventListener("abort", stopped, { once: true });
      });
      aborted.catch(() => {});
      try {
        await events.waitUntilReady();
        const jobs: Job<TrialSpec, TrialOutcome>[] = [];
        for (const spec of trials) {
          if (fresh) await removeFinished(queue, spec.digest);
          const job = await queue.add("trial", spec, {
            jobId: spec.digest,
            attempts: ATTEMPTS,
            backoff: { type: "exponential", delay: 1000 },
            removeOnComplete: { age: WEEK },
            removeOnFail: { age: WEEK },
          });
          // A job that failed before (a crash, a worker of the wrong version) is tried again by a new submission.
          if ((await job.getState()) === "failed") await job.retry("failed");
          jobs.push(job);
        }
        const finished = jobs.map((job) =>
          job.waitUntilFinished(events).then(
            (outcome: TrialOutcome) => report({ type: "completed", digest: job.id!, outcome }),
            (e: Error) => report({ type: "failed", digest: job.id!, error: e.message }),
          ),
        );
        await Promise.race([Promise.all(finished), aborted]);
      } finally {
        signal?.removeEventListener("abort", stopped);
        await events.close();
        await queue.close();
      }
    },
  };
}

async function removeFinished(queue: Queue<TrialSpec, TrialOutcome>, id: string): Promise<void> {
  const job = await Job.fromId(queue, id);
  if (job && ((await job.isCompleted()) || (await job.isFailed()))) await job.remove();
}
