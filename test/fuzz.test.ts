/**
 * A seeded fuzzer over loralab's inputs: mutations of a real checkpoint, config, tokenizer, adapter and data file
 * (test/fuzz/mutations.ts), each run through what `loralab eval --adapter` runs, in one process (test/fuzz/run.ts),
 * plus a sample through the real CLI. Every case must end in a clear user error or in finite numbers: no silently
 * accepted bad input, no internal error (a stack trace), no hang, no leaked tensor, no poisoned backend.
 * LORALAB_FUZZ_CASES and LORALAB_FUZZ_SEED run more cases or another sequence.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Random } from "../src/core/random.js";
import type { CaseReport } from "./fuzz/run.js";
import { MUTATIONS } from "./fuzz/mutations.js";
import { copyFlat } from "./fuzz/files.js";
import { runCli, testDir } from "./helpers/cli.js";
import { REPO } from "./helpers/paths.js";

const CASES = Number(process.env.LORALAB_FUZZ_CASES ?? 320);
const SEED = Number(process.env.LORALAB_FUZZ_SEED ?? 20261201);
/** A case that prints nothing for this long is a hang. */
const HANG_MS = 90_000;

interface FuzzRun {
  reports: CaseReport[];
  hung?: string;
  stderr: string;
  code: number | null;
}

function fuzz(seed: number, count: number, work: string): Promise<FuzzRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO, "test/fuzz/run.ts"), String(seed), String(count), work], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const reports: CaseReport[] = [];
    let started = "";
    let hung: string | undefined;
    let stderr = "";
    let buffer = "";
    let timer = setTimeout(() => {}, 0);
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = started || "before the first case";
        child.kill("SIGKILL");
      }, HANG_MS);
    };
    arm();
    child.stdout.on("data", (chunk: Buffer) => {
      arm();
      buffer += chunk.toString("utf8");
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        const parsed = JSON.parse(line) as CaseReport | { start: number; what: string };
        if ("start" in parsed) started = `case ${parsed.start}: ${parsed.what}`;
        else reports.push(parsed);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ reports, hung, stderr, code });
    });
  });
}

test(
  `${CASES} fuzzed inputs (seed ${SEED}): each a clear user error or finite numbers; no leak, no hang, no poisoned backend`,
  { timeout: 30 * 60_000 },
  async (t) => {
    const run = await fuzz(SEED, CASES, testDir(t, "fuzz"));
    assert.equal(run.hung, undefined, `hung at ${run.hung}`);
    assert.equal(run.code, 0, run.stderr.slice(-3000));
    assert.equal(run.reports.length, CASES, `${run.reports.length} of ${CASES} cases reported`);
    const failures = run.reports.filter((r) => r.verdict !== "rejected" && r.verdict !== "accepted");
    const shown = failures.map((f) => `case ${f.case} ${f.verdict}: ${f.what} → ${f.detail}`).join("\n");
    assert.deepEqual(failures.length, 0, `\n${shown}`);
    const kinds = new Set(run.reports.map((r) => r.mutation));
    assert.equal(kinds.size, Math.min(CASES, MUTATIONS.length), "every mutation kind is tried");
    const rejected = run.reports.filter((r) => r.verdict === "rejected").length;
    t.diagnostic(`${rejected} rejected with a user error, ${CASES - rejected} accepted with finite numbers`);
  },
);

/** The same mutations through the real binary: exit 2 with one line naming a file, or exit 0 with finite JSON. */
const CLI_SAMPLE = 16;
const sample = new Random(SEED + 1);
for (let i = 0; i < CLI_SAMPLE; i++) {
  const mutation = MUTATIONS[(i * 7 + sample.int(MUTATIONS.length)) % MUTATIONS.length]!;
  const seed = sample.int(2 ** 31);
  test(`loralab eval on a fuzzed input: ${mutation.name} (seed ${seed})`, { timeout: 120_000 }, async (t) => {
    const dir = testDir(t, "fuzz-cli");
    const pristine = path.join(dir, "pristine");
    // The worker writes the pristine inputs once and runs zero cases.
    const made = await fuzz(0, 0, pristine);
    assert.equal(made.code, 0, made.stderr);
    const files = { model: path.join(dir, "model"), adapter: path.join(dir, "adapter"), data: path.join(dir, "data.jsonl") };
    copyFlat(path.join(pristine, "pristine/model"), files.model);
    copyFlat(path.join(pristine, "pristine/adapter"), files.adapter);
    fs.copyFileSync(path.join(pristine, "pristine/data.jsonl"), files.data);
    const { what, expect } = mutation.apply(files, new Random(seed));
    const adapter = mutation.target === "adapter" ? ["--adapter", files.adapter] : [];
    const r = runCli(["eval", "--model", files.model, ...adapter, "--data", files.data, "--json"]);
    const shown = `${what}\nexit ${r.status}\n${r.stdout}\n${r.stderr}`;
    assert.doesNotMatch(r.stderr, /^\s+at |internal error/m, shown);
    if (r.status === 0) {
      assert.equal(expect, "either", `silently accepted: ${shown}`);
      const { loss } = JSON.parse(r.stdout) as { loss: number };
      assert.ok(Number.isFinite(loss), shown);
    } else {
      assert.ok(r.status === 2 || r.status === 3, shown);
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("backend:"));
      assert.equal(lines.length, 1, shown);
      assert.match(lines[0]!, /\.(json|jsonl|safetensors)\b|\/model\b|\/adapter\b/, `the error names no file: ${shown}`);
    }
  });
}
