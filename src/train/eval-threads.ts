/**
 * Evaluation on every core: the forward passes of perplexity and of the generation metrics split over
 * data-parallel replicas of the model (replicas.ts). The work is dealt out in whole batches of windows and whole
 * generations, so each thread computes exactly the bits this thread would, and the results equal one thread's.
 *
 * How many threads: the `workers` option, or for "auto" what autoEvalWorkers picks for the piece of work at hand.
 * The replicas start with the first piece that pays for them and serve the rest until close().
 */
import * as os from "node:os";
import { activeBlas, tf } from "../backend/index.js";
import { validate } from "../core/check.js";
import { UserError } from "../core/errors.js";
import type { Example } from "../data/batch.js";
import type { EvalCompute } from "../metrics/evaluate.js";
import { generateAll, type GenerationRequest, type SamplingChoice } from "../metrics/generation-eval.js";
import { scoreWindows, type WindowScores } from "../metrics/perplexity.js";
import type { CausalLM } from "../models/causal-lm.js";
import { autoEvalWorkers, availableCores, type EvalShape, type WorkersOption, workersCheck } from "./parallelism.js";
import { inferenceRecipe, parameterRootOf, type ReplicaRecipe } from "./replica.js";
import type { FromReplica } from "./replica-protocol.js";
import { alongside, ReplicaPool } from "./replicas.js";
import { contiguousPart } from "./step.js";

/** Runs `fn` with the model computing as the evaluation means it to (e.g. one adapter active), and restores it. */
export type Within = <T>(fn: () => T) => T;

export interface EvalThreadsOptions {
  workers?: WorkersOption;
  /**
   * Where the model's state (its active adapter, adapters switched off) is set for this evaluation: only around
   * this thread's own computations and the replicas' snapshot, never across an await, so other code running
   * meanwhile sees the model as it was.
   */
  within?: Within;
}

export class EvalThreads implements EvalCompute {
  private pool: ReplicaPool | undefined;
  /** Why "auto" could not start replicas (they are not tried again). */
  private refused: string | undefined;
  private readonly workers: WorkersOption;
  private readonly within: Within;
  /** The threads the last piece of work ran on, and why. */
  parallelism = { workers: 1, why: "nothing evaluated yet" };

  constructor(
    readonly model: CausalLM,
    options: EvalThreadsOptions = {},
  ) {
    this.workers = validate(options.workers ?? "auto", workersCheck, "eval", "workers");
    this.within = options.within ?? ((fn) => fn());
  }

  async scoreWindows(batches: Example[][]): Promise<WindowScores> {
    const tokens = batches.reduce((n, b) => n + b.reduce((m, w) => m + w.inputIds.length, 0), 0);
    const parts = await this.split(batches, { tokens, passes: batches.length });
    if (!parts) return this.within(() => scoreWindows(this.model, batches));
    const [own, ...answers] = await this.computeParts(
      (rank) => ({ type: "scoreWindows", batches: parts[rank]! }),
      () => this.within(() => scoreWindows(this.model, parts[0]!)),
    );
    const all = [own, ...(answers as WindowScores[])];
    return { nll: concatFloats(all.map((s) => s.nll)), tokens: concatFloats(all.map((s) => s.tokens)) };
  }

  async generate(requests: GenerationRequest[], sampling: SamplingChoice): Promise<number[][]> {
    const budget = requests.reduce((n, r) => n + r.maxNewTokens, 0);
    const tokens = requests.reduce((n, r) => n + r.promptIds.length, budget);
    // A pass for each prompt, then one for each generated token.
    const parts = await this.split(requests, { tokens, passes: requests.length + budget });
    if (!parts) return this.within(() => generateAll(this.model, requests, sampling));
    const [own, ...answers] = await this.computeParts(
      (rank) => ({ type: "generate", requests: parts[rank]!, sampling }),
      () => this.within(() => generateAll(this.model, parts[0]!, sampling)),
    );
    return [own, ...answers.map((a) => (a as { ids: number[][] }).ids)].flat();
  }

  /** tf.memory() of each worker's replica (none before replicas start). */
  async workerMemory(): Promise<{ numTensors: number; numBytes: number }[]> {
    return this.pool ? this.pool.memory() : [];
  }

  /** Ends the replicas (if any started). */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.terminate();
  }

  /** The contiguous parts of `items` each thread computes (the first is this thread's), or undefined for this thread alone. */
  private async split<T>(items: T[], work: Pick<EvalShape, "tokens" | "passes">): Promise<T[][] | undefined> {
    const recipe = this.within(() => inferenceRecipe(this.model));
    const threads = await this.threadsFor({ ...this.shape(items.length, recipe), ...work }, recipe);
    if (threads === 1) return undefined;
    return Array.from({ length: threads }, (_, r) => items.slice(...contiguousPart(items.length, r, threads)));
  }

  /** Each worker's part (`message(rank)`) while this thread computes its own; the results in rank order. */
  private async computeParts<T>(message: Parameters<ReplicaPool["requestAll"]>[0], own: () => T): Promise<[T, ...unknown[]]> {
    const pending = this.pool!.requestAll(message);
    const mine = await alongside(pending, own);
    return [mine, ...(await pending).map(strip)];
  }

  private shape(parts: number, recipe: ReplicaRecipe | string): Omit<EvalShape, "tokens" | "passes"> {
    return {
      cores: availableCores(),
      backend: tf.getBackend(),
      parts,
      parameters: [...parameterRootOf(this.model).namedParameters()].reduce((sum, [, p]) => sum + p.size, 0),
      notReplicable: typeof recipe === "string" ? recipe : undefined,
      memoryBytes: os.totalmem(),
      nativeBlas: tf.getBackend() === "wasm" && activeBlas() !== undefined,
      layers: this.model.config.numLayers,
    };
  }

  /** The threads for a piece of work, starting the replicas when it is the first that needs them. */
  private async threadsFor(shape: EvalShape, recipe: ReplicaRecipe | string): Promise<number> {
    this.parallelism = this.workers === "auto" ? autoEvalWorkers(shape) : { workers: this.workers, why: "the workers option" };
    const wanted = this.parallelism.workers;
    if (wanted === 1) return 1;
    if (this.refused !== undefined) {
      this.parallelism = { workers: 1, why: this.refused };
      return 1;
    }
    if (!this.pool) {
      if (typeof recipe === "string") throw new UserError(`workers: ${wanted} needs a model that replicates into workers, but ${recipe}`);
      const snapshot = this.within(() => ReplicaPool.snapshot(recipe, parameterRootOf(this.model)));
      try {
        this.pool = await ReplicaPool.start(snapshot, wanted);
      } catch (e) {
        if (this.workers !== "auto" || !(e instanceof UserError)) throw e;
        this.refused = e.message;
        this.parallelism = { workers: 1, why: e.message };
        return 1;
      }
    }
    // Replicas started for an earlier piece serve this one too; a thread without a part gets an empty one.
    this.parallelism.workers = this.pool.count;
    return this.pool.count;
  }
}

/** A worker's answer without its message type. */
function strip(answer: FromReplica): unknown {
  const { type: _type, ...rest } = answer;
  return rest;
}

function concatFloats(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Runs `fn` with an EvalThreads for `model`, ending its replicas afterwards. */
export async function withEvalThreads<T>(
  model: CausalLM,
  options: EvalThreadsOptions,
  fn: (threads: EvalThreads) => Promise<T>,
): Promise<T> {
  const threads = new EvalThreads(model, options);
  try {
    return await fn(threads);
  } finally {
    await threads.close();
  }
}
