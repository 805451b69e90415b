/**
 * `loralab bench --mode eval --config NAME`: evaluation in one thread against evaluation on every core
 * (train/eval-threads.ts), on a named shape with random weights and tokens, in one process: perplexity over
 * `batches` batches of the shape, and greedy generation of `prompts` prompts. The threaded time includes starting
 * the replicas, as a user waits for it; each number is the median of `repeats` runs, and the threaded results must
 * equal one thread's bit for bit.
 */
import { backendInfo, initBackend, matmulEngine } from "../backend/index.js";
import { Random } from "../core/random.js";
import { median } from "../core/stats.js";
import type { Example } from "../data/batch.js";
import { type EvalCompute, inThisThread } from "../metrics/evaluate.js";
import type { GenerationRequest } from "../metrics/generation-eval.js";
import { planPerplexity } from "../metrics/perplexity.js";
import { withEvalThreads } from "../train/eval-threads.js";
import type { WorkersOption } from "../train/parallelism.js";
import { type BenchShape, randomModel } from "./bench-setup.js";

export interface EvalBenchOptions {
  shape: BenchShape;
  /** Batches of perplexity windows (of the shape's batch × seq). */
  batches: number;
  /** Greedy generations of `newTokens` tokens each, from 8-token prompts. */
  prompts: number;
  newTokens: number;
  workers: WorkersOption;
  repeats: number;
  backend: string | undefined;
}

/** One thread against the threaded run, for one kind of work. */
export interface EvalBenchPart {
  one_thread_s: number;
  threads: number;
  /** Why that many (the workers option, or what "auto" decided). */
  why: string;
  threaded_s: number;
  /** one_thread_s / threaded_s. */
  speedup: number;
  /** The threaded numbers equal one thread's bit for bit. */
  same: boolean;
}

export interface EvalBenchResult {
  config: string;
  backend: string;
  matmul: string;
  perplexity: EvalBenchPart & { tokens: number };
  generation: EvalBenchPart & { new_tokens: number };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - start) / 1000 };
}

/** Medians of `repeats` alternating runs of `work` on one thread and on EvalThreads. */
async function compare<T>(
  model: ReturnType<typeof randomModel>,
  options: EvalBenchOptions,
  work: (compute: EvalCompute) => Promise<T>,
): Promise<EvalBenchPart> {
  const one: number[] = [];
  const threaded: number[] = [];
  let same = true;
  let used = { workers: 1, why: "" };
  await work(inThisThread(model)); // warm-up: the backend's kernels and caches, as the threaded runs' replicas will not get
  for (let i = 0; i < options.repeats; i++) {
    const a = await timed(() => work(inThisThread(model)));
    const b = await timed(() =>
      withEvalThreads(model, { workers: options.workers }, async (threads) => {
        const value = await work(threads);
        used = { ...threads.parallelism };
        return value;
      }),
    );
    one.push(a.seconds);
    threaded.push(b.seconds);
    same &&= JSON.stringify(a.value) === JSON.stringify(b.value);
  }
  const [oneS, threadedS] = [median(one), median(threaded)];
  return { one_thread_s: oneS, threads: used.workers, why: used.why, threaded_s: threadedS, speedup: oneS / threadedS, same };
}

export async function evalBench(config: string, options: EvalBenchOptions): Promise<EvalBenchResult> {
  await initBackend(options.backend);
  const { shape } = options;
  const model = randomModel(shape.config);
  const vocab = model.config.vocabSize;
  const random = new Random(1);
  const token = () => 1 + random.int(vocab - 1);
  const rows: Example[] = Array.from({ length: options.batches * shape.batch }, () => ({
    inputIds: Array.from({ length: shape.seq }, token),
  }));
  const plan = planPerplexity(model, rows, { batchSize: shape.batch, maxLength: shape.seq });
  const requests: GenerationRequest[] = Array.from({ length: options.prompts }, () => ({
    promptIds: Array.from({ length: 8 }, token),
    maxNewTokens: options.newTokens,
  }));
  const perplexity = await compare(model, options, async (c) => [...(await c.scoreWindows(plan.batches)).nll]);
  const generation = await compare(model, options, (c) => c.generate(requests, { temperature: 0 }));
  return {
    config,
    backend: backendInfo()!.name,
    matmul: matmulEngine(backendInfo()!),
    perplexity: { ...perplexity, tokens: rows.length * shape.seq },
    generation: { ...generation, new_tokens: options.prompts * options.newTokens },
  };
}
