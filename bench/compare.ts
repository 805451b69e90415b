/**
 * loralab's training step next to the PyTorch reference (bench/train.py), same shapes, in one invocation:
 *
 *   node --import tsx bench/compare.ts [--config small] [--modes lora,full] [--steps 5] [--workers auto,1] [--baseline DIR] [--out FILE.json]
 *
 * Runs, one after another, each in a fresh process: `loralab bench --config C --mode M --workers W --json` for
 * each W of --workers (the first is the one the ratios are of; "auto" is what training uses by default) (and the
 * same from another built checkout of loralab with --baseline, e.g. an older commit, for before/after), and
 * bench/train.py with 2 threads under OpenMP's default settings and under OMP_WAIT_POLICY=PASSIVE
 * (Debian's python3-torch with libopenblas0; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the
 * reference's environment, as a machine-wide setting of them misleads OpenBLAS), and the matmul ceiling
 * (`loralab bench --mode matmul`) before and after. Prints a ratio table, each loralab step's share of the
 * ceiling at its thread count, and writes every measurement as JSON.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { BENCH_SHAPES } from "../src/cli/bench-setup.js";
import { packageRoot } from "../src/core/package.js";

const ROOT = packageRoot();

interface Measurement {
  workers?: number;
  tokens_per_s: number;
  step_s: number;
  step_cpu_s: number;
  peak_rss_bytes: number;
  first_loss: number;
}

interface Row {
  system: string;
  mode: string;
  result: Measurement;
}

function run<T = Measurement>(command: string, args: string[], env: NodeJS.ProcessEnv): T {
  const child = spawnSync(command, args, { cwd: ROOT, env, encoding: "utf8", maxBuffer: 1 << 26 });
  if (child.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as T;
}

function referenceEnv(passive: boolean): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  delete env.OMP_WAIT_POLICY;
  if (passive) env.OMP_WAIT_POLICY = "PASSIVE";
  return env;
}

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "small" },
    modes: { type: "string", default: "lora,full" },
    steps: { type: "string", default: "5" },
    workers: { type: "string", default: "auto,1" },
    out: { type: "string" },
    baseline: { type: "string" },
  },
});
const shape = BENCH_SHAPES[values.config];
if (!shape) throw new Error(`--config: expected one of ${Object.keys(BENCH_SHAPES).join(", ")}`);
const modes = values.modes.split(",");
const rows: Row[] = [];
/** The machine's matmul ceiling (loralab bench --mode matmul), measured before and after the steps. */
const ceiling = () =>
  run<{ gflops: Record<string, number> }>(
    process.execPath,
    ["bin/loralab.js", "bench", "--mode", "matmul", "--config", values.config, "--json"],
    process.env,
  );
const ceilings = [ceiling()];
for (const mode of modes) {
  const benchArgs = ["bench", "--config", values.config, "--mode", mode, "--steps", values.steps, "--json"];
  for (const workers of values.workers.split(",")) {
    const result = run(process.execPath, ["bin/loralab.js", ...benchArgs, "--workers", workers], process.env);
    const threads = `${result.workers} thread${result.workers === 1 ? "" : "s"}`;
    rows.push({ system: `loralab, --workers ${workers} (${threads})`, mode, result });
  }
  if (values.baseline) {
    const dir = path.resolve(values.baseline);
    const result = run(process.execPath, [path.join(dir, "bin", "loralab.js"), ...benchArgs], process.env);
    rows.push({ system: `loralab at ${path.basename(dir)}`, mode, result });
  }
  for (const passive of [false, true]) {
    const args = ["bench/train.py", "--shape", JSON.stringify(shape), "--mode", mode, "--steps", values.steps, "--threads", "2"];
    rows.push({
      system: passive ? "pytorch OMP_WAIT_POLICY=PASSIVE" : "pytorch default OpenMP",
      mode,
      result: run("/usr/bin/python3", args, referenceEnv(passive)),
    });
  }
}

ceilings.push(ceiling());

const systems = [...new Set(rows.map((r) => r.system))];
const find = (system: string, mode: string) => rows.find((r) => r.system === system && r.mode === mode)?.result;
console.log(`config ${values.config}: batch ${shape.batch} × ${shape.seq}, median of ${values.steps} steps after a warm-up step`);
const header = [
  "system",
  ...modes.flatMap((m) => [`${m} tokens/s`, `${m} step CPU`, `${m} peak RSS`]),
  ...modes.map((m) => `loralab/this (${m})`),
];
console.log(`| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
for (const system of systems) {
  const cells = modes.flatMap((m) => {
    const r = find(system, m);
    return r ? [r.tokens_per_s.toFixed(0), `${r.step_cpu_s.toFixed(2)} s`, `${(r.peak_rss_bytes / 1e9).toFixed(2)} GB`] : ["", "", ""];
  });
  const ratios = modes.map((m) => {
    const [mine, theirs] = [rows.find((r) => r.mode === m)?.result, find(system, m)];
    return mine && theirs ? `${(mine.tokens_per_s / theirs.tokens_per_s).toFixed(2)}×` : "";
  });
  console.log(`| ${[system, ...cells, ...ratios].join(" | ")} |`);
}
const threadCounts = Object.keys(ceilings[0]!.gflops);
const ceilingOf = (threads: string) => (ceilings[0]!.gflops[threads]! + ceilings[1]!.gflops[threads]!) / 2;
console.log(
  `matmul ceiling (mean of before and after): ${threadCounts.map((n) => `${n} thread${n === "1" ? "" : "s"} ${ceilingOf(n).toFixed(1)} GFLOP/s`).join(", ")}`,
);
for (const row of rows.filter((r) => r.system.startsWith("loralab,"))) {
  const r = row.result as Measurement & { gflops: number; workers: number };
  const limit = ceilingOf(String(r.workers));
  if (limit)
    console.log(`  ${row.system} ${row.mode}: ${r.gflops.toFixed(1)} GFLOP/s, ${((100 * r.gflops) / limit).toFixed(0)} % of the ceiling`);
}
const out = values.out ?? path.join(ROOT, "bench", "results", `compare-${values.config}.json`);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  `${JSON.stringify({ config: values.config, shape, steps: Number(values.steps), date: new Date().toISOString(), rows, ceilings }, null, 2)}\n`,
);
console.log(`written: ${path.relative(process.cwd(), out)}`);
