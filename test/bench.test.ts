/** `loralab bench` as a user runs it: the training-step measurement of a named shape, and its input errors. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CLI } from "./helpers/paths.js";

function bench(...args: string[]) {
  return spawnSync(process.execPath, [CLI, "bench", ...args], { encoding: "utf8" });
}

for (const mode of ["lora", "full"]) {
  test(`bench --config tiny --mode ${mode} --json prints one line of measurements`, () => {
    const run = bench("--config", "tiny", "--mode", mode, "--steps", "2", "--json");
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.equal(lines.length, 1);
    const r = JSON.parse(lines[0]!) as Record<string, number | string>;
    for (const key of ["tokens_per_s", "step_s", "peak_rss_bytes", "gflops"]) assert.ok((r[key] as number) > 0, `${key} = ${r[key]}`);
    assert.equal(r.backend, "wasm");
    assert.equal(r.workers, 1);
    assert.equal(r.tokens_per_s, (2 * 64) / (r.step_s as number)); // tiny: batch 2 × 64 tokens
    // Random weights (std 0.02) predict nearly uniformly over the 512-token vocabulary: ln 512 ≈ 6.24.
    assert.ok(Math.abs((r.first_loss as number) - Math.log(512)) < 0.1, `first loss ${r.first_loss}`);
    assert.equal(r.trainable_params, mode === "lora" ? 2 * 2 * 8 * (64 + 64) : 133_440);
  });
}

test("bench --mode qlora: NF4 + double quantization projections (4.127 bits each), LoRA on all of them, measured memory", () => {
  const run = bench("--config", "tiny", "--mode", "qlora", "--steps", "2", "--json");
  assert.equal(run.status, 0, run.stderr);
  const r = JSON.parse(run.stdout) as {
    trainable_params: number;
    first_loss: number;
    memory: { weights: Record<string, { params: number; bytes: number }>; optimizer_bytes: number };
  };
  // tiny: 2 layers, C 64, I 176; q, k, v, o are 64 × 64, gate and up 64 → 176, down 176 → 64.
  const projections = 2 * (4 * 64 * 64 + 3 * 64 * 176);
  const nf4 = r.memory.weights["nf4+dq"]!;
  assert.equal(nf4.params, projections);
  const bits = (8 * nf4.bytes) / nf4.params;
  assert.ok(Math.abs(bits - 4.127) < 0.05, `${bits} bits per parameter`);
  const lora = 2 * 8 * (4 * (64 + 64) + 3 * (64 + 176));
  assert.equal(r.trainable_params, lora);
  assert.equal(r.memory.optimizer_bytes, 2 * 4 * lora); // AdamW: two float32 moments per trainable parameter
  assert.ok(Math.abs(r.first_loss - Math.log(512)) < 0.1, `first loss ${r.first_loss}`);
});

test("bench --workers 2: the same step over two data-parallel workers, the same first loss", () => {
  const one = bench("--config", "tiny", "--mode", "lora", "--steps", "1", "--json");
  const two = bench("--config", "tiny", "--mode", "lora", "--steps", "1", "--workers", "2", "--json");
  assert.equal(two.status, 0, two.stderr);
  const [a, b] = [one, two].map((run) => JSON.parse(run.stdout) as { workers: number; first_loss: number; tokens_per_s: number });
  assert.equal(b!.workers, 2);
  assert.ok(b!.tokens_per_s > 0);
  assert.ok(Math.abs(b!.first_loss - a!.first_loss) < 1e-5 * a!.first_loss, `${b!.first_loss} vs ${a!.first_loss}`);
});

test("bench --mode matmul: the config's linear products in 1 thread and in 2 at once, in GFLOP/s", () => {
  const run = bench("--mode", "matmul", "--config", "tiny", "--workers", "2", "--repeats", "1", "--json");
  assert.equal(run.status, 0, run.stderr);
  const r = JSON.parse(run.stdout) as { mode: string; backend: string; rows: number; gflops: Record<string, number> };
  assert.equal(r.mode, "matmul");
  assert.equal(r.backend, "wasm");
  assert.equal(r.rows, 64); // tiny: batch 2 × 64 tokens over 2 threads
  assert.deepEqual(Object.keys(r.gflops), ["1", "2"]);
  for (const g of Object.values(r.gflops)) assert.ok(g > 0.1 && g < 10_000, `${g} GFLOP/s`);
});

test("bench rejects an unknown shape, a bad --workers, and QLoRA over workers, in one line", () => {
  const unknown = bench("--config", "huge");
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr.trim(), 'loralab bench: --config: expected one of tiny, small, 135m, got "huge"');
  const workers = bench("--config", "tiny", "--workers", "0");
  assert.equal(workers.status, 2);
  assert.match(workers.stderr.trim(), /^loralab bench: --workers: expected a positive integer/);
  const qlora = bench("--config", "tiny", "--mode", "qlora", "--workers", "2");
  assert.equal(qlora.status, 2, qlora.stderr);
  assert.match(qlora.stderr.trim(), /^loralab bench: workers: 2 needs a model that replicates into workers, but a quantized base model/);
});
