/**
 * Data-parallel replicas for the Trainer: N worker threads (replica-worker.ts), each with its own tfjs backend and
 * a replica of the trained model (built from a recipe, every weight copied in once). Per step each computes the
 * gradients of its share of the rows into its slot of a SharedArrayBuffer; the trainer sums the slots in rank
 * order, clips and applies the one AdamW update itself, writes the updated trainable weights to another shared
 * buffer and tells the replicas to copy them in (for LoRA a few KB; for full fine-tuning the whole model).
 *
 * Workers run compiled JavaScript from dist/ with plain node: a worker inherits the parent's `--import tsx`,
 * whose loader fails on worker scripts, so the source tree's trainer starts dist/'s worker (build first).
 */
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { fingerprint, replicaRecipe } from "./replica.js";
import { type FromReplica, readTensor, shareTensors, type SharedTensors, type ToReplica, writeTensors } from "./replica-protocol.js";
import type { Share } from "./step.js";
import type { Trainable } from "./trainable.js";

/** The compiled worker script beside this module, or dist/'s when this module runs from the TypeScript source. */
export function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".js")) return here.replace(/replicas\.js$/, "replica-worker.js");
  return here.replace(/([\\/])src([\\/]train[\\/])replicas\.ts$/, "$1dist$1src$2replica-worker.js");
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

  constructor(script: string, rank: number) {
    // execArgv []: not the parent's `--import tsx` (see the file's comment).
    this.worker = new Worker(script, { execArgv: [], name: `loralab replica ${rank}` });
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

export class Replicas {
  private constructor(
    private readonly workers: ReplicaWorker[],
    private readonly trainable: Trainable,
    private readonly weights: SharedTensors,
    private readonly gradients: Float32Array[],
  ) {}

  /** Starts `count` replicas of `trainable` with its current weights; a trainable that cannot be replicated is a user error. */
  static async start(trainable: Trainable, count: number, options: { gradientCheckpointing: boolean }): Promise<Replicas> {
    const recipe = replicaRecipe(trainable);
    if (typeof recipe === "string") throw new UserError(`workers: ${count} needs a model that replicates into workers, but ${recipe}`);
    const script = workerScript();
    if (!fs.existsSync(script)) throw new UserError(`workers: ${count} needs the compiled worker ${script}: run npm run build`);
    const parameters = shareTensors([...trainable.parameterRoot.namedParameters()]);
    const weights = shareTensors(trainable.trainableParameters(), false);
    const gradientBuffer = new SharedArrayBuffer(4 * weights.floats * count);
    const gradients = Array.from({ length: count }, (_, r) => new Float32Array(gradientBuffer, 4 * weights.floats * r, weights.floats));
    const workers = Array.from({ length: count }, (_, rank) => new ReplicaWorker(script, rank));
    const replicas = new Replicas(workers, trainable, weights, gradients);
    try {
      const answers = await Promise.all(
        workers.map((w, rank) =>
          w.request({
            type: "setup",
            setup: {
              backend: tf.getBackend(),
              recipe,
              fingerprint: fingerprint(trainable.parameterRoot),
              parameters,
              trainable: weights,
              gradients: gradientBuffer,
              rank,
              gradientCheckpointing: options.gradientCheckpointing,
            },
          }),
        ),
      );
      for (const a of answers) if (a.type === "refused") throw new UserError(`workers: ${count}: ${a.reason}`);
    } catch (e) {
      await replicas.terminate();
      throw e;
    }
    return replicas;
  }

  get count(): number {
    return this.workers.length;
  }

  /** Each replica computes its share; returns the summed gradients (by trainable parameter name) and NLL sum. */
  async gradientsOf(shares: Share[]): Promise<{ grads: Map<string, tf.Tensor>; nllSum: number }> {
    const answers = await Promise.all(this.workers.map((w, r) => w.request({ type: "step", share: shares[r]! })));
    let nllSum = 0;
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

  /** Sends the trainer's trainable weights (after an update) to every replica. */
  async syncWeights(): Promise<void> {
    writeTensors(new Map(this.trainable.trainableParameters()), this.weights.layout, new Float32Array(this.weights.buffer));
    await Promise.all(this.workers.map((w) => w.request({ type: "weights" })));
  }

  /** tf.memory() of each replica. */
  async memory(): Promise<{ numTensors: number; numBytes: number }[]> {
    const answers = await Promise.all(this.workers.map((w) => w.request({ type: "memory" })));
    return answers.map((a) => a as { numTensors: number; numBytes: number });
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
