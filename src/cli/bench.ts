/**
 * `loralab bench`: forward-pass throughput of the same model on each backend, each in its own
 * process (a backend owns its tensors), reported as medians and as a ratio to the cpu backend.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { initBackend, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { parseModelConfig } from "../models/config.js";
import { createModel, loadModel } from "../models/load.js";
import type { CausalLM } from "../models/causal-lm.js";
import { Random } from "../core/random.js";
import { median } from "../core/stats.js";
import { isPositiveInt, parseCommandArgs, parseNumberOption } from "./args.js";
import { printJson } from "./common.js";

/** A mid-sized Llama (≈5M parameters) used when no --model is given: big enough that matmuls dominate. */
const SYNTHETIC_CONFIG = {
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

export function syntheticModel(): CausalLM {
  const model = createModel(parseModelConfig(SYNTHETIC_CONFIG, "synthetic bench config"));
  const random = new Random(0);
  for (const [, p] of model.namedParameters()) {
    const values = Float32Array.from({ length: p.size }, () => (random.next() - 0.5) * 0.1);
    tf.tidy(() => p.assign(tf.tensor(values, p.shape)));
  }
  return model;
}

interface WorkerResult {
  backend: string;
  model: string;
  batch: number;
  seq: number;
  repeats: number;
  medianMs: number;
  tokensPerSecond: number;
}

async function worker(backend: string, modelRef: string | undefined, batch: number, seq: number, repeats: number): Promise<WorkerResult> {
  await initBackend(backend);
  const model = modelRef ? (await loadModel(modelRef)).model : syntheticModel();
  const length = Math.min(seq, model.config.maxPositions);
  const ids = tf.tensor2d(
    Array.from({ length: batch * length }, (_, i) => (i * 7919) % model.config.vocabSize),
    [batch, length],
    "int32",
  );
  const times: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const started = performance.now();
    const logits = tf.tidy(() => model.forward(ids));
    await logits.data(); // wait for the backend to finish
    logits.dispose();
    if (r > 0) times.push(performance.now() - started); // the first pass warms up kernels
  }
  const medianMs = median(times);
  return {
    backend,
    model: modelRef ?? "synthetic llama 4×256",
    batch,
    seq: length,
    repeats,
    medianMs,
    tokensPerSecond: (batch * length) / (medianMs / 1000),
  };
}

/**
 * Runs `loralab bench <args of variant>` in a fresh process per variant (a backend owns its tensors,
 * and a clean process keeps one variant's memory from inflating another's) and parses each JSON line.
 */
export function runWorkers<T>(variants: string[], argsFor: (variant: string) => string[], label: (variant: string) => string): T[] {
  const cli = fileURLToPath(new URL("../../../bin/loralab.js", import.meta.url));
  return variants.map((variant) => {
    const run = spawnSync(process.execPath, [cli, "bench", ...argsFor(variant)], { encoding: "utf8" });
    if (run.status !== 0) throw new UserError(`${label(variant)}: ${run.stderr.trim().split("\n").pop()}`);
    return JSON.parse(run.stdout) as T;
  });
}

export async function bench(argv: string[]): Promise<number> {
  const mode = argv.find((a, i) => argv[i - 1] === "--mode") ?? argv.find((a) => a.startsWith("--mode="))?.slice(7) ?? "forward";
  if (mode === "train") return (await import("./bench-train.js")).trainBench(argv);
  if (mode !== "forward") throw new UserError(`--mode: expected forward or train, got "${mode}"`);
  const { values } = parseCommandArgs(argv, {
    model: { type: "string" },
    backends: { type: "string", default: "wasm,cpu" },
    batch: { type: "string" },
    seq: { type: "string" },
    repeats: { type: "string" },
    json: { type: "boolean" },
    worker: { type: "string" },
    mode: { type: "string" },
  });
  const batch = parseNumberOption("--batch", values.batch, 4, isPositiveInt, "a positive integer");
  const seq = parseNumberOption("--seq", values.seq, 128, isPositiveInt, "a positive integer");
  const repeats = parseNumberOption("--repeats", values.repeats, 7, isPositiveInt, "a positive integer");
  if (values.worker) {
    printJson(await worker(values.worker, values.model, batch, seq, repeats));
    return 0;
  }
  const results = runWorkers<WorkerResult>(
    values.backends.split(","),
    (backend) => [
      "--worker",
      backend,
      "--batch",
      String(batch),
      "--seq",
      String(seq),
      "--repeats",
      String(repeats),
      ...(values.model ? ["--model", values.model] : []),
    ],
    (backend) => `backend ${backend}`,
  );
  const cpu = results.find((r) => r.backend === "cpu");
  const rows = results.map((r) => ({ ...r, vsCpu: cpu ? r.tokensPerSecond / cpu.tokensPerSecond : null }));
  if (values.json) printJson(rows);
  else {
    console.log(`forward pass, ${rows[0]?.model}, batch ${batch} × ${rows[0]?.seq} tokens, median of ${repeats}`);
    for (const r of rows) {
      console.log(
        `  ${r.backend.padEnd(16)} ${r.medianMs.toFixed(1).padStart(9)} ms  ${r.tokensPerSecond.toFixed(0).padStart(8)} tokens/s${r.vsCpu === null ? "" : `  ${r.vsCpu.toFixed(1)}× cpu`}`,
      );
    }
  }
  return 0;
}
