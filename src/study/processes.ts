/**
 * `parallel: N`: trials in N worker processes on this machine (each its own tfjs backend and model copy), fed one
 * trial at a time over IPC. A process that dies fails the trial it held, and a fresh one takes its place.
 */
import { type ChildProcess, fork } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { backendInfo } from "../backend/index.js";
import { coresEach } from "../train/parallelism.js";
import type { Executor, TrialEvent } from "./executor.js";
import type { ChildMessage } from "./process-worker.js";
import { TrialCancelled, type TrialOutcome } from "./runner.js";
import type { TrialSpec } from "./trial.js";

const here = fileURLToPath(import.meta.url);
/** The child's module beside this one (.ts under tsx, .js when compiled). */
const CHILD = path.join(path.dirname(here), `process-worker${path.extname(here)}`);

function spawnChild(backendChoice: string | undefined, cores: number): { child: ChildProcess; stderr: () => string } {
  // The parent's loader flags (tsx) carry over; a test runner's or inspector's do not.
  const execArgv = process.execArgv.filter((a) => !a.startsWith("--test") && !a.startsWith("--inspect"));
  // Same backend as this process, so a trial computes the same numbers wherever it runs.
  const backend = backendChoice ?? backendInfo()?.name ?? process.env.LORALAB_BACKEND ?? "";
  const child = fork(CHILD, [], {
    execArgv,
    // Each child's trainings share out only its part of the cores (parallelism.ts), not all of them.
    env: { ...process.env, LORALAB_BACKEND: backend, LORALAB_CORES: String(cores) },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let tail = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-2000);
  });
  return { child, stderr: () => tail.trim().split("\n").at(-1) ?? "" };
}

/** Runs one trial on `child`; resolves with its last event (completed or failed, also when the process dies). */
function runOn(worker: ReturnType<typeof spawnChild>, spec: TrialSpec, report: (e: TrialEvent) => void): Promise<TrialEvent> {
  const { child } = worker;
  return new Promise((resolve) => {
    const onMessage = (m: ChildMessage) => {
      if (m.type === "step") return report({ type: "step", digest: spec.digest, step: m.step, loss: m.loss, totalSteps: m.totalSteps });
      done(
        m.type === "completed"
          ? { type: "completed", digest: spec.digest, outcome: m.outcome as TrialOutcome }
          : { type: "failed", digest: spec.digest, error: m.error },
      );
    };
    const onExit = (code: number | null, signal: string | null) =>
      done({
        type: "failed",
        digest: spec.digest,
        error: `the worker process ended (${signal ?? `exit code ${code}`}) during the trial${worker.stderr() ? `: ${worker.stderr()}` : ""}`,
      });
    const done = (e: TrialEvent) => {
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(e);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
    child.send({ type: "run", spec });
  });
}

/** `backend`: the children's (default: this process's, so trials compute what they would compute here). */
export function processExecutor(processes: number, backend?: string): Executor {
  return {
    description: `${processes} local worker process${processes === 1 ? "" : "es"}`,
    async run(trials, report, signal) {
      const queue = [...trials];
      // By the process count, not the trials left: a trial trains with the same threads however many were cached.
      const cores = coresEach(processes);
      const workers: ReturnType<typeof spawnChild>[] = [];
      const stop = () => workers.forEach((w) => w.child.kill());
      signal?.addEventListener("abort", stop, { once: true });
      const slot = async () => {
        let worker = spawnChild(backend, cores);
        workers.push(worker);
        for (let spec = queue.shift(); spec && !signal?.aborted; spec = queue.shift()) {
          report({ type: "started", digest: spec.digest });
          const last = await runOn(worker, spec, report);
          if (signal?.aborted) break;
          report(last);
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) {
            worker = spawnChild(backend, cores);
            workers.push(worker);
          }
        }
        worker.child.kill();
      };
      try {
        await Promise.all(Array.from({ length: Math.min(processes, trials.length) }, slot));
      } finally {
        signal?.removeEventListener("abort", stop);
        stop();
      }
      if (signal?.aborted) throw new TrialCancelled("the study was stopped");
    },
  };
}
