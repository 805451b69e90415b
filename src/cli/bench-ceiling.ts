/**
 * `loralab bench --mode matmul`: the machine's ceiling for a training step's matmuls. Every linear product of a
 * config's decoder layer and its lm_head, as 2-D [rows, in]·[in, out] (XNNPACK's fast path on wasm), multiplied
 * in 1 thread and in N threads at once, each thread its own backend (as data-parallel workers are). A step's
 * `gflops` over the N-thread figure says how much of what the backend can do the step gets.
 */
import type { Worker } from "node:worker_threads";
import { startModuleWorker } from "../core/threads.js";
import { median } from "../core/stats.js";
import { availableCores } from "../train/parallelism.js";
import { type LlamaConfig, parseModelConfig } from "../models/config.js";
import type { FromCeiling, Product, ToCeiling } from "./bench-ceiling-worker.js";
import type { BenchShape } from "./bench-setup.js";

export interface CeilingResult {
  mode: "matmul";
  backend: string;
  /** What the products ran on (e.g. OpenBLAS), as `loralab info` says it. */
  matmul: string;
  /** Rows of every product: one thread's share of the shape's batch × seq tokens at the largest thread count. */
  rows: number;
  /** Median over trials of all threads' FLOPs over the wall time from the start to the last thread's end. */
  gflops: Record<string, number>;
}

/** The products of one decoder layer's projections and the lm_head, `rows` tokens each. */
function products(shape: BenchShape, rows: number): Product[] {
  const c = parseModelConfig(shape.config, "bench config") as LlamaConfig; // bench shapes are Llamas
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const [h, i] = [c.hiddenSize, c.intermediateSize];
  return [
    [rows, h, q],
    [rows, h, kv],
    [rows, h, kv],
    [rows, q, h],
    [rows, h, i],
    [rows, h, i],
    [rows, i, h],
    [rows, h, c.vocabSize],
  ];
}

function ask(worker: Worker, message: ToCeiling): Promise<FromCeiling> {
  return new Promise((resolve, reject) => {
    const settle = (then: () => void) => {
      worker.off("message", onMessage).off("error", onError).off("exit", onExit);
      then();
    };
    const onMessage = (m: FromCeiling) => settle(() => resolve(m));
    const onError = (e: Error) => settle(() => reject(e));
    const onExit = (code: number) => settle(() => reject(new Error(`a matmul thread exited (code ${code})`)));
    worker.on("message", onMessage).on("error", onError).on("exit", onExit);
    worker.postMessage(message);
  });
}

/** All-thread GFLOP/s of `threads` threads multiplying at once, median of `trials`. */
async function measure(
  threads: number,
  list: Product[],
  backend: string | undefined,
  trials: number,
): Promise<{ gflops: number; backend: string; matmul: string }> {
  const workers = Array.from({ length: threads }, (_, t) =>
    startModuleWorker(import.meta.url, "bench-ceiling-worker", `loralab matmul ${t}`),
  );
  try {
    const ready = await Promise.all(workers.map((w) => ask(w, { type: "setup", backend, products: list })));
    const roundFlops = list.reduce((sum, [m, k, n]) => sum + 2 * m * k * n, 0);
    const repeats = Math.max(1, Math.round(40e9 / roundFlops)); // ≈ 1 s a trial at 40 GFLOP/s
    const results: number[] = [];
    for (let trial = 0; trial < trials; trial++) {
      const started = performance.now();
      const done = await Promise.all(workers.map((w) => ask(w, { type: "go", repeats })));
      const seconds = (performance.now() - started) / 1000;
      results.push(done.reduce((sum, d) => sum + (d as { flops: number }).flops, 0) / seconds / 1e9);
    }
    const { backend: name, matmul } = ready[0] as { backend: string; matmul: string };
    return { gflops: median(results), backend: name, matmul };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The ceiling in 1 thread and in `threads` (default: the cores, LORALAB_CORES if set). */
export async function matmulCeiling(shape: BenchShape, o: { threads?: number; backend?: string; trials?: number }): Promise<CeilingResult> {
  const threads = o.threads ?? availableCores();
  const rows = Math.ceil((shape.batch * shape.seq) / threads);
  const list = products(shape, rows);
  const counts = [...new Set([1, threads])];
  const gflops: Record<string, number> = {};
  let [backend, matmul] = ["", ""];
  for (const count of counts) {
    const m = await measure(count, list, o.backend, o.trials ?? 3);
    gflops[String(count)] = m.gflops;
    [backend, matmul] = [m.backend, m.matmul];
  }
  return { mode: "matmul", backend, matmul, rows, gflops };
}
