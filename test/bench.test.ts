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

test("bench rejects an unknown shape, and --workers other than 1, in one line", () => {
  const unknown = bench("--config", "huge");
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr.trim(), 'loralab bench: --config: expected one of tiny, small, 135m, got "huge"');
  const workers = bench("--config", "tiny", "--workers", "2");
  assert.equal(workers.status, 2);
  assert.match(workers.stderr.trim(), /^loralab bench: --workers: expected 1/);
});
