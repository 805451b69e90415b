/**
 * Data-parallel replicas: the calling thread and N − 1 worker threads (replica-worker.ts), each worker with its own
 * tfjs backend and a replica of the model (built from a recipe, every weight copied in once). ReplicaPool starts
 * and talks to them (eval-threads.ts scores on it); Replicas trains on it.
 *
 * For the Trainer, per step every thread computes the gradients of its share of the rows into its slot of a
 * SharedArrayBuffer (the trainer's thread takes share 0 while the workers compute theirs); the trainer sums the
 * slots in rank order, clips and applies the one AdamW update itself, writes the updated trainable weights to
 * another shared buffer and tells the replicas to copy them in (for LoRA a few KB; for full fine-tuning the whole
 * model).
 *
 * Workers run from dist/ or from the source, whichever this module runs from (core/threads.ts).
 */
import type { Worker } from "node:worker_threads";
import { blasSetting, simdActive, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { startModuleWorker } from "../core/threads.js";
import type { Module } from "../nn/module.js";
import { fingerprint, type ReplicaRecipe, replicaRecipe } from "./replica.js";
import {
  type FromReplica,
  readTensor,
  shareTensors,
  type SharedTensors,
  type ToReplica,
  type TrainingSetup,
  writeTensors,
} from "./replica-protocol.js";
import type { Example } from "../data/batch.js";
import { contiguousPart, type NllSum, type Share, shareGradients, shareNll } from "./step.js";
import type { Trainable } from "./trainable.js";

/**
 * `compute()` in this thread while the workers' answers are `pending`; when it throws, the workers' answers are
 * awaited (ignored) before rethrowing, so none is left to reject unhandled.
 */
export async function alongside<T>(pending: Promise<unknown>, compute: () => T): Promise<T> {
  try {
    return compute();
  } catch (e) {
    await pending.catch(() => undefined);
    throw e;
  }
}

interface Pending {
  resolve: (m: FromReplica) => void;
  reject: (e: Error) => void;
}

/** One worker and its queue of answers (it answers each message in order). */
class ReplicaWorker {
  private readonly worker: Worker;
  private readonly pending: Pending[] = [];
  private failure: Error | undefined;

  constructor(rank: number) {
    this.worker = startModuleWorker(import.meta.url, "replica-worker", `loralab replica ${rank}`);
    this.worker.on("message", (m: FromReplica) => {
      const p = this.pending.shift();
      if (!p) return;
      if (m.type === "error")
        p.reject(m.user ? new UserError(m.message) : Object.assign(new Error(`replica ${rank}: ${m.message}`), { stack: m.stack }));
      else p.resolve(m);
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    this.worker.on("error", (e) => fail(new Error(`replica ${rank} failed: ${e.message}`)));
    this.worker.on("exit", (code) => fail(new Error(`replica ${rank} exited (code ${code})`)));
  }

  request(message: ToReplica): Promise<FromReplica> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.worker.postMessage(message);
    });
  }

  async terminate(): Promise<void> {
    this.worker.removeAllListeners("exit");
    this.failure = new Error("replica terminated");
    await this.worker.terminate();
  }
}

export interface ReplicaSnapshot {
  recipe: ReplicaRecipe;
  fingerprint: string[];
  parameters: SharedTensors;
}

/** Worker replicas of one model; the thread that started them is one more. */
export class ReplicaPool {
  private constructor(private readonly workers: ReplicaWorker[]) {}

  /**
   * What replicas of `root` (the module the parameter names come from) built by `recipe` start from: its structure
   * and its parameters' values now (copied: the original may change while the replicas start).
   */
  static snapshot(recipe: ReplicaRecipe, root: Module): ReplicaSnapshot {
    return { recipe, fingerprint: fingerprint(root, recipe), parameters: shareTensors([...root.namedParameters()]) };
  }

  /** Starts `count` − 1 workers from `snapshot`; a replica that builds another structure is a user error. */
  static async start(snapshot: ReplicaSnapshot, count: number, training?: TrainingSetup): Promise<ReplicaPool> {
    const pool = new ReplicaPool([]);
    try {
      for (let rank = 1; rank < count; rank++) pool.workers.push(new ReplicaWorker(rank));
      const answers = await Promise.all(
        pool.workers.map((w, i) =>
          w.request({
            type: "setup",
            setup: { backend: tf.getBackend(), blas: blasSetting(), simd: simdActive(), ...snapshot, rank: i + 1, training },
          }),
        ),
      );
      for (const a of answers) if (a.type === "refused") throw new UserError(`workers: ${count}: ${a.reason}`);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    return pool;
  }

  /** Threads computing: the workers and the starting one. */
  get count(): number {
    return this.workers.length + 1;
  }

  /** Asks worker `rank` (1…count − 1) for `message(rank)`, all at once; the answers in rank order. */
  requestAll(message: (rank: number) => ToReplica): Promise<FromReplica[]> {
    return Promise.all(this.workers.map((w, i) => w.request(message(i + 1))));
  }

  /** tf.memory() of each worker's replica. */
  async memory(): Promise<{ numTensors: number; numBytes: number }[]> {
    const answers = await this.requestAll(() => ({ type: "memory" }));
    return answers.map((a) => a as { numTensors: number; numBytes: number });
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The Trainer's replicas: a pool of its trainable, a gradient slot each and the trainable weights shared. */
export class Replicas {
  private constructor(
    private readonly pool: ReplicaPool,
    private readonly trainable: Trainable,
    private readonly options: { gradientCheckpointing: boolean },
    private readonly weights: SharedTensors,
    private readonly gradients: Float32Array[],
  ) {}

  /**
   * Starts `count` − 1 worker replicas of `trainable` with its current weights (the trainer's thread is the
   * count-th); a trainable that cannot be replicated is a user error.
   */
  static async start(trainable: Trainable, count: number, options: { gradientCheckpointing: boolean }): Promise<Replicas> {
    const recipe = replicaRecipe(trainable);
    if (typeof recipe === "string") throw new UserError(`workers: ${count} needs a model that replicates into workers, but ${recipe}`);
    const weights = shareTensors(trainable.trainableParameters(), false);
    const gradientBuffer = new SharedArrayBuffer(4 * weights.floats * count);
    const gradients = Array.from({ length: count }, (_, r) => new Float32Array(gradientBuffer, 4 * weights.floats * r, weights.floats));
    const training = { trainable: weights, gradients: gradientBuffer, gradientCheckpointing: options.gradientCheckpointing };
    const pool = await ReplicaPool.start(ReplicaPool.snapshot(recipe, trainable.parameterRoot), count, training);
    return new Replicas(pool, trainable, options, weights, gradients);
  }

  /** Threads computing shares: the workers and the trainer's. */
  get count(): number {
    return this.pool.count;
  }

  /**
   * Every thread computes its share (the trainer's thread share 0, while the workers compute theirs); returns the
   * summed gradients (by trainable parameter name) and NLL sum.
   */
  async gradientsOf(shares: Share[]): Promise<{ grads: Map<string, tf.Tensor>; nllSum: number }> {
    const pending = this.pool.requestAll((rank) => ({ type: "step", share: shares[rank]! }));
    const own = await alongside(pending, () => shareGradients(this.trainable, shares[0]!, this.options));
    writeTensors(own.grads, this.weights.layout, this.gradients[0]!);
    tf.dispose([...own.grads.values()]);
    const answers = await pending;
    let nllSum = own.nllSum;
    for (const a of answers) nllSum += (a as { nllSum: number }).nllSum;
    // Rank order, whatever order the replicas finished in: the same sum on every run.
    const sum = this.gradients[0]!;
    for (let r = 1; r < this.gradients.length; r++) {
      const slot = this.gradients[r]!;
      for (let i = 0; i < sum.length; i++) sum[i] += slot[i]!;
    }
    const grads = new Map(this.weights.layout.map((entry) => [entry.name, readTensor(entry, sum)]));
    return { grads, nllSum };
  }

  /** The evaluation loss of `examples`, contiguous parts scored by every thread at once (the trainer's the first). */
  async score(examples: Example[], batchSize: number): Promise<NllSum> {
    const part = (r: number) => examples.slice(...contiguousPart(examples.length, r, this.count));
    const pending = this.pool.requestAll((rank) => ({ type: "score", examples: part(rank), batchSize }));
    const own = await alongside(pending, () => shareNll(this.trainable.model, part(0), batchSize));
    const sums = [own, ...((await pending) as NllSum[])];
    return { nllSum: sums.reduce((s, p) => s + p.nllSum, 0), tokens: sums.reduce((s, p) => s + p.tokens, 0) };
  }

  /** Sends the trainer's trainable weights (after an update) to every worker's replica. */
  async syncWeights(): Promise<void> {
    writeTensors(new Map(this.trainable.trainableParameters()), this.weights.layout, new Float32Array(this.weights.buffer));
    await this.pool.requestAll(() => ({ type: "weights" }));
  }

  memory(): Promise<{ numTensors: number; numBytes: number }[]> {
    return this.pool.memory();
  }

  terminate(): Promise<void> {
    return this.pool.terminate();
  }
}
