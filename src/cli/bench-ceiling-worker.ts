/**
 * A thread of `loralab bench --mode matmul` (bench-ceiling.ts): builds its operands once, then at each "go"
 * multiplies them `repeats` times and answers with its FLOPs and seconds.
 */
import { parentPort } from "node:worker_threads";
import { initBackend, matmulEngine, tf } from "../backend/index.js";

export type Product = [m: number, k: number, n: number];
export type ToCeiling = { type: "setup"; backend: string | undefined; products: Product[] } | { type: "go"; repeats: number };
export type FromCeiling = { type: "ready"; backend: string; matmul: string } | { type: "done"; flops: number; seconds: number };

let operands: [tf.Tensor2D, tf.Tensor2D][] = [];

function round(): number {
  let flops = 0;
  for (const [a, b] of operands) {
    a.matMul(b).dispose();
    flops += 2 * a.shape[0] * a.shape[1] * b.shape[1];
  }
  return flops;
}

parentPort!.on("message", async (message: ToCeiling) => {
  if (message.type === "setup") {
    const backend = await initBackend(message.backend);
    operands = message.products.map(([m, k, n]) => [tf.randomUniform([m, k], -1, 1), tf.randomUniform([k, n], -1, 1)]);
    round(); // warm-up: XNNPACK packs its operators on first use
    parentPort!.postMessage({ type: "ready", backend: backend.name, matmul: matmulEngine(backend) } satisfies FromCeiling);
    return;
  }
  const started = performance.now();
  let flops = 0;
  for (let r = 0; r < message.repeats; r++) flops += round();
  parentPort!.postMessage({ type: "done", flops, seconds: (performance.now() - started) / 1000 } satisfies FromCeiling);
});
