/**
 * `loralab bench --mode forward`: forward-pass throughput of the same model on each backend, each in
 * its own process (a backend owns its tensors), reported as medians and as a ratio to the cpu backend.
 */
import { initBackend, tf } from "../backend/index.js";
import { median } from "../core/stats.js";
import { loadModel } from "../models/load.js";
import { randomModel, runWorkers } from "./bench-setup.js";
import { printJson } from "./common.js";

/** A mid-sized Llama (≈5M parameters) used when no --model is given: big enough that matmuls dominate. */
const FORWARD_CONFIG = {
  model_type: "llama",
  vocab_size: 4096,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 512,
  tie_word_embeddings: true,
};

export interface ForwardBenchOptions {
  model: string | undefined;
  backends: string[];
  batch: number;
  seq: number;
  repeats: number;
  json: boolean;
}

interface ForwardResult {
  backend: string;
  model: string;
  batch: number;
  seq: number;
  repeats: number;
  medianMs: number;
  tokensPerSecond: number;
}

/** One backend, in this process: the median of `repeats` forward passes after a warm-up pass. */
export async function forwardWorker(backend: string, o: ForwardBenchOptions): Promise<ForwardResult> {
  await initBackend(backend);
  const model = o.model ? (await loadModel(o.model)).model : randomModel(FORWARD_CONFIG);
  const length = Math.min(o.seq, model.config.maxPositions);
  const ids = tf.tensor2d(
    Array.from({ length: o.batch * length }, (_, i) => (i * 7919) % model.config.vocabSize),
    [o.batch, length],
    "int32",
  );
  const times: number[] = [];
  for (let r = 0; r < o.repeats + 1; r++) {
    const started = performance.now();
    const logits = tf.tidy(() => model.forward(ids));
    await logits.data(); // wait for the backend to finish
    logits.dispose();
    if (r > 0) times.push(performance.now() - started); // the first pass warms up kernels
  }
  const medianMs = median(times);
  return {
    backend,
    model: o.model ?? "synthetic llama 4×256",
    batch: o.batch,
    seq: length,
    repeats: o.repeats,
    medianMs,
    tokensPerSecond: (o.batch * length) / (medianMs / 1000),
  };
}

export function forwardBench(o: ForwardBenchOptions): number {
  const results = runWorkers<ForwardResult>(
    o.backends,
    (backend) => [
      "--mode",
      "forward",
      "--worker",
      backend,
      "--batch",
      String(o.batch),
      "--seq",
      String(o.seq),
      "--repeats",
      String(o.repeats),
      ...(o.model ? ["--model", o.model] : []),
    ],
    (backend) => `backend ${backend}`,
  );
  const cpu = results.find((r) => r.backend === "cpu");
  const rows = results.map((r) => ({ ...r, vsCpu: cpu ? r.tokensPerSecond / cpu.tokensPerSecond : null }));
  if (o.json) printJson(rows);
  else {
    console.log(`forward pass, ${rows[0]?.model}, batch ${o.batch} × ${rows[0]?.seq} tokens, median of ${o.repeats}`);
    for (const r of rows) {
      const vs = r.vsCpu === null ? "" : `  ${r.vsCpu.toFixed(1)}× cpu`;
      console.log(
        `  ${r.backend.padEnd(16)} ${r.medianMs.toFixed(1).padStart(9)} ms  ${r.tokensPerSecond.toFixed(0).padStart(8)} tokens/s${vs}`,
      );
    }
  }
  return 0;
}
