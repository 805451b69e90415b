/**
 * Wall time of a 6-trial sweep (tiny-moby, r = 1, 2, 4 × seeds 1, 2) with 1 and with 2 local worker processes,
 * through the real CLI (`loralab sweep --parallel N`), each repetition into a fresh run registry so every trial
 * trains. Runs alternate (1, 2, 1, 2, …) so machine noise hits both alike; medians are reported.
 *
 *   npm run build && node --import tsx bench/sweep-parallel.ts [--repeats 3] [--steps 30]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { median } from "../src/core/stats.js";
import { Dataset } from "../src/data/dataset.js";

const { values } = parseArgs({ options: { repeats: { type: "string", default: "3" }, steps: { type: "string", default: "30" } } });
const repeats = Number(values.repeats);
const root = fs.mkdtempSync(path.join(os.tmpdir(), "loralab-bench-sweep-"));
const cli = path.resolve(import.meta.dirname, "../bin/loralab.js");
const data = path.join(root, "data.jsonl");
// The first 64 sentences of Moby-Dick's first chapter.
const chapter = Dataset.load("moby-dick").rows()[3]!.text as string;
const sentences = chapter
  .split(/(?<=[.?!])\s+/)
  .filter((t) => t.trim().length > 0)
  .slice(0, 64);
fs.writeFileSync(data, sentences.map((text) => JSON.stringify({ text })).join("\n"));

function sweepSeconds(processes: number, repeat: number): number {
  const runs = path.join(root, `runs-${processes}-${repeat}`);
  const args = [
    "sweep",
    "--model",
    "tiny-moby",
    "--data",
    data,
    "--grid",
    "r=1,2,4",
    "--seeds",
    "1,2",
    "--steps",
    values.steps!,
    "--batch",
    "8",
  ];
  const started = performance.now();
  const run = spawnSync(process.execPath, [cli, ...args, "--parallel", String(processes), "--json"], {
    encoding: "utf8",
    env: { ...process.env, LORALAB_RUNS_DIR: runs },
  });
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 0)
    throw new Error(
      `loralab sweep --parallel ${processes} failed (${run.status ?? run.signal ?? run.error}):\n${run.stderr}${run.stdout.slice(0, 2000)}`,
    );
  const trials = (JSON.parse(run.stdout) as { trials: { status: string }[] }).trials;
  if (trials.length !== 6 || trials.some((t) => t.status !== "completed")) throw new Error(`not 6 completed trials:\n${run.stdout}`);
  return seconds;
}

const times: Record<number, number[]> = { 1: [], 2: [] };
try {
  for (let r = 0; r < repeats; r++) {
    for (const n of [1, 2]) {
      times[n]!.push(sweepSeconds(n, r));
      console.error(`--parallel ${n}, repeat ${r + 1}: ${times[n]!.at(-1)!.toFixed(1)} s`);
    }
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
const one = median(times[1]!);
const two = median(times[2]!);
console.log(
  `6 trials (${values.steps} steps each), ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)} at the end`,
);
console.log("| worker processes | median wall time | vs 1 |");
console.log("| --- | --- | --- |");
console.log(`| 1 | ${one.toFixed(1)} s | 1.00× |`);
console.log(`| 2 | ${two.toFixed(1)} s | ${(two / one).toFixed(2)}× |`);
