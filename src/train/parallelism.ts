/**
 * How many data-parallel workers a training run uses when `workers` is "auto" (the default): as many as the
 * process has cores when that pays, else 1. It pays when a step costs enough to amortise a replica's start (≈ 3 s:
 * a tfjs backend and a model copy) and the per-step exchange, and when the wasm or cpu backend computes in one
 * thread (tfjs-node already spreads its kernels over the cores). The decision depends on the machine and the run,
 * never on the load of the moment, so the same machine always trains the same run the same way.
 */
import * as os from "node:os";

export type WorkersOption = number | "auto";

/**
 * What one thread reaches on a training step, by where its matmuls run (measured: wasm ≈ 24 GFLOP per CPU-second;
 * a native BLAS, one thread of it, ≈ 55).
 */
const ONE_THREAD_FLOPS = { wasm: 24e9, nativeBlas: 55e9 };
/** A step must take at least this long on one thread, and the run this long in all, for replicas to pay. */
const MIN_STEP_SECONDS = 0.5;
const MIN_RUN_SECONDS = 10;
/** What a replica adds besides its weights and activations: a tfjs backend, its wasm heap's slack, a JS heap. */
const REPLICA_OVERHEAD_BYTES = 256 * 2 ** 20;

/**
 * The cores this process may use: LORALAB_CORES when a parent running several trainings at once (a sweep's
 * worker processes) gave each its part, else the machine's.
 */
export function availableCores(env: NodeJS.ProcessEnv = process.env): number {
  const given = Number(env.LORALAB_CORES);
  return Number.isInteger(given) && given > 0 ? given : os.availableParallelism();
}

/** The cores each of `concurrent` trainings running at once gets (at least one): what LORALAB_CORES gives them. */
export function coresEach(concurrent: number): number {
  return Math.max(1, Math.floor(availableCores() / concurrent));
}

export interface RunShape {
  cores: number;
  backend: string;
  /** Parts a step splits into at most (rows of a micro-batch, or micro-batches): each thread needs one. */
  parts: number;
  /** Tokens of one optimizer step. */
  tokensPerStep: number;
  /** Elements of every parameter of the model (base and adapters). */
  parameters: number;
  /** Full fine-tuning (every weight's gradient too) rather than an adapter. */
  full: boolean;
  steps: number;
  /** Undefined when the model replicates into workers; else why not. */
  notReplicable: string | undefined;
  /** The machine's memory (not what is free at the moment: the decision must not depend on the load). */
  memoryBytes: number;
  /** The matmuls run on a native BLAS (blas.ts): shorter steps. */
  nativeBlas: boolean;
}

/** The number of workers "auto" picks for `run`, and why (for the run's log). */
export function autoWorkers(run: RunShape): { workers: number; why: string } {
  const one = (why: string) => ({ workers: 1, why });
  if (run.cores < 2) return one("one core");
  if (run.backend !== "wasm" && run.backend !== "cpu") return one(`the ${run.backend} backend uses the cores itself`);
  if (run.notReplicable) return one(run.notReplicable);
  if (run.parts < 2) return one("a step of one row");
  // Forward and backward: about 6 FLOPs per parameter and token; LoRA skips the frozen weights' gradients (≈ 4).
  const flops = run.nativeBlas ? ONE_THREAD_FLOPS.nativeBlas : ONE_THREAD_FLOPS.wasm;
  const stepSeconds = ((run.full ? 6 : 4) * run.parameters * run.tokensPerStep) / flops;
  if (stepSeconds < MIN_STEP_SECONDS) return one("steps too short to share");
  if (stepSeconds * run.steps < MIN_RUN_SECONDS) return one("a run too short to share");
  const replicaBytes = 4 * run.parameters + REPLICA_OVERHEAD_BYTES;
  const fitting = 1 + Math.floor((0.25 * run.memoryBytes) / replicaBytes);
  const workers = Math.min(run.cores, run.parts, fitting);
  return workers > 1 ? { workers, why: `${workers} cores` } : one("too little memory for a replica");
}
