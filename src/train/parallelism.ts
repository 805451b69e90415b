/**
 * How many data-parallel workers a training run uses when `workers` is "auto" (the default): as many as the
 * process has cores when that pays, else 1. It pays when a step costs enough to amortise a replica's start (≈ 3 s:
 * a tfjs backend and a model copy) and the per-step exchange, and when the wasm or cpu backend computes in one
 * thread (tfjs-node already spreads its kernels over the cores). The decision depends on the machine and the run,
 * never on the load of the moment, so the same machine always trains the same run the same way.
 */
import * as os from "node:os";
import { either, oneOf, positiveInt } from "../core/check.js";

export type WorkersOption = number | "auto";

/** A thread count, or "auto" (training's and evaluation's `workers`). */
export const workersCheck = either(positiveInt, oneOf("auto"));

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

/** What decides whether a piece of work splits over threads, for training and evaluation alike. */
interface SplitShape {
  cores: number;
  backend: string;
  /** Parts the work splits into at most (rows, micro-batches, batches of windows, generations): each thread needs one. */
  parts: number;
  /** Elements of every parameter of the model (base and adapters). */
  parameters: number;
  /** Undefined when the model replicates into workers; else why not. */
  notReplicable: string | undefined;
  /** The machine's memory (not what is free at the moment: the decision must not depend on the load). */
  memoryBytes: number;
  /** The matmuls run on a native BLAS (blas.ts): shorter steps. */
  nativeBlas: boolean;
}

export interface RunShape extends SplitShape {
  /** Tokens of one optimizer step. */
  tokensPerStep: number;
  /** Full fine-tuning (every weight's gradient too) rather than an adapter. */
  full: boolean;
  steps: number;
}

export interface EvalShape extends SplitShape {
  /** Tokens through the model: every window's, or every generation's prompt and token budget. */
  tokens: number;
  /** Forward passes: a batch of windows each, or for generation a prompt and then each new token. */
  passes: number;
  layers: number;
}

type Decision = { workers: number; why: string };
const one = (why: string): Decision => ({ workers: 1, why });

/** Why `shape` runs in one thread whatever its length, or undefined. */
function oneThreadOnly(shape: SplitShape, onePart: string): string | undefined {
  if (shape.cores < 2) return "one core";
  if (shape.backend !== "wasm" && shape.backend !== "cpu") return `the ${shape.backend} backend uses the cores itself`;
  if (shape.notReplicable) return shape.notReplicable;
  if (shape.parts < 2) return onePart;
  return undefined;
}

/** As many threads as cores, parts and (a quarter of the machine's memory for replicas) allow. */
function threadsFitting(shape: SplitShape): Decision {
  const replicaBytes = 4 * shape.parameters + REPLICA_OVERHEAD_BYTES;
  const fitting = 1 + Math.floor((0.25 * shape.memoryBytes) / replicaBytes);
  const workers = Math.min(shape.cores, shape.parts, fitting);
  return workers > 1 ? { workers, why: `${workers} cores` } : one("too little memory for a replica");
}

const oneThreadFlops = (shape: SplitShape) => (shape.nativeBlas ? ONE_THREAD_FLOPS.nativeBlas : ONE_THREAD_FLOPS.wasm);

/** The number of workers "auto" picks for training `run`, and why (for the run's log). */
export function autoWorkers(run: RunShape): Decision {
  const only = oneThreadOnly(run, "a step of one row");
  if (only) return one(only);
  // Forward and backward: about 6 FLOPs per parameter and token; LoRA skips the frozen weights' gradients (≈ 4).
  const stepSeconds = ((run.full ? 6 : 4) * run.parameters * run.tokensPerStep) / oneThreadFlops(run);
  if (stepSeconds < MIN_STEP_SECONDS) return one("steps too short to share");
  if (stepSeconds * run.steps < MIN_RUN_SECONDS) return one("a run too short to share");
  return threadsFitting(run);
}

/**
 * What a forward pass costs besides its FLOPs, which is most of a generated token's time: reading every weight once
 * (decoding is bound by memory bandwidth) and dispatching each layer's kernels. Fitted to generation on this
 * project's 2-core machine (`loralab bench --mode eval`): ≈ 3 ms a token with stories260K (5 layers, 1 MB of
 * weights), ≈ 20 ms with `small` (8 layers, 120 MB).
 */
const WEIGHT_READ_BYTES_PER_SECOND = 8e9;
const LAYER_DISPATCH_SECONDS = 0.6e-3;
/** Starting replicas takes ≈ 1 s (`small`): an evaluation this long on one thread gains ≈ 1.4× from a second. */
const MIN_EVAL_SECONDS = 5;

/** One thread's seconds for an evaluation (the estimate autoEvalWorkers decides by). */
export function evalSeconds(e: EvalShape): number {
  const perPass = (4 * e.parameters) / WEIGHT_READ_BYTES_PER_SECOND + e.layers * LAYER_DISPATCH_SECONDS;
  return (2 * e.parameters * e.tokens) / oneThreadFlops(e) + e.passes * perPass;
}

/** The number of workers "auto" picks for an evaluation (perplexity windows or generations), and why. */
export function autoEvalWorkers(evaluation: EvalShape): Decision {
  const only = oneThreadOnly(evaluation, "one batch or generation");
  if (only) return one(only);
  if (evalSeconds(evaluation) < MIN_EVAL_SECONDS) return one("an evaluation too short to share");
  return threadsFitting(evaluation);
}
