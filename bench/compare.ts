/**
 * loralab's training step next to the PyTorch reference (bench/train.py), same shapes, in one invocation:
 *
 *   node --import tsx bench/compare.ts [--config small] [--modes lora,full] [--steps 5] [--workers auto,1]
 *     [--blas auto,off] [--baseline DIR] [--rounds 1] [--out FILE.json]
 *
 * Runs, each in a fresh process: `loralab bench --config C --mode M --workers W --json` for each W of --workers
 * and each LORALAB_BLAS setting of --blas (the first pair is the one the ratios are of; "auto" and "auto" are what
 * training uses by default) (and the same from another built checkout of loralab with --baseline, e.g. an older
 * commit, for before/after), and bench/train.py with 2 threads under OpenMP's default settings and under
 * OMP_WAIT_POLICY=PASSIVE (Debian's python3-torch with libopenblas0; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
 * removed from the reference's environment, as a machine-wide setting of them misleads OpenBLAS), and the matmul
 * ceiling (`loralab bench --mode matmul`) of each BLAS setting. With --rounds N it runs everything N times,
 * every other round in reverse order (a shared machine's speed drifts), and every cell and ratio is the median
 * over the rounds. Prints a ratio table, each loralab step's share of the ceiling at its thread count, and
 * writes every measurement as JSON.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { BENCH_SHAPES } from "../src/cli/bench-setup.js";
import { packageRoot } from "../src/core/package.js";
import { median } from "../src/core/stats.js";

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
  round: number;
  /** loralab's rows: the LORALAB_BLAS setting they ran with. */
  blas?: string;
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
    blas: { type: "string", default: "auto" },
    rounds: { type: "string", default: "1" },
    out: { type: "string" },
    baseline: { type: "string" },
  },
});
const shape = BENCH_SHAPES[values.config];
if (!shape) throw new Error(`--config: expected one of ${Object.keys(BENCH_SHAPES).join(", ")}`);
const modes = values.modes.split(",");
const blasSettings = values.blas.split(",");
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds: expected a positive integer");
const withBlas = (blas: string): NodeJS.ProcessEnv => ({ ...process.env, LORALAB_BLAS: blas });

/** One measurement to take each round: a row of the table, or a ceiling. */
interface Job {
  label: string;
  take(round: number): void;
}
const rows: Row[] = [];
const ceilings: { blas: string; round: number; gflops: Record<string, number> }[] = [];
const jobs: Job[] = [];
/** The machine's matmul ceiling (loralab bench --mode matmul) with each BLAS setting. */
for (const blas of blasSettings) {
  jobs.push({
    label: `ceiling, LORALAB_BLAS=${blas}`,
    take: (round) => {
      const args = ["bin/loralab.js", "bench", "--mode", "matmul", "--config", values.config, "--json"];
      ceilings.push({ blas, round, ...run<{ gflops: Record<string, number> }>(process.execPath, args, withBlas(blas)) });
    },
  });
}
for (const mode of modes) {
  const benchArgs = ["bench", "--config", values.config, "--mode", mode, "--steps", values.steps, "--json"];
  for (const blas of blasSettings) {
    for (const workers of values.workers.split(",")) {
      jobs.push({
        label: `loralab ${mode} --workers ${workers} LORALAB_BLAS=${blas}`,
        take: (round) => {
          const result = run(process.execPath, ["bin/loralab.js", ...benchArgs, "--workers", workers], withBlas(blas));
          const threads = `${result.workers} thread${result.workers === 1 ? "" : "s"}`;
          const on = blasSettings.length > 1 ? `LORALAB_BLAS=${blas}, ` : "";
          rows.push({ system: `loralab, ${on}--workers ${workers} (${threads})`, mode, round, blas, result });
        },
      });
    }
  }
  if (values.baseline) {
    const dir = path.resolve(values.baseline);
    jobs.push({
      label: `baseline ${mode}`,
      take: (round) =>
        rows.push({
          system: `loralab at ${path.basename(dir)}`,
          mode,
          round,
          result: run(process.execPath, [path.join(dir, "bin", "loralab.js"), ...benchArgs], process.env),
        }),
    });
  }
  for (const passive of [false, true]) {
    const args = ["bench/train.py", "--shape", JSON.stringify(shape), "--mode", mode, "--steps", values.steps, "--threads", "2"];
    const system = passive ? "pytorch OMP_WAIT_POLICY=PASSIVE" : "pytorch default OpenMP";
    jobs.push({
      label: `${system} ${mode}`,
      take: (round) => rows.push({ system, mode, round, result: run("/usr/bin/python3", args, referenceEnv(passive)) }),
    });
  }
}
for (let round = 0; round < rounds; round++) {
  for (const job of round % 2 === 0 ? jobs : [...jobs].reverse()) {
    console.error(`round ${round + 1}/${rounds}: ${job.label}`);
    job.take(round);
  }
}

const systems = [...new Set(rows.map((r) => r.system))];
const of = (system: string, mode: string) => rows.filter((r) => r.system === system && r.mode === mode);
console.log(
  `config ${values.config}: batch ${shape.batch} × ${shape.seq}, median of ${values.steps} steps after a warm-up step; ` +
    `median of ${rounds} round${rounds === 1 ? "" : "s"}`,
);
const header = [
  "system",
  ...modes.flatMap((m) => [`${m} tokens/s`, `${m} step CPU`, `${m} peak RSS`]),
  ...modes.map((m) => `loralab/this (${m})`),
];
console.log(`| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
const first = systems[0]!;
for (const system of systems) {
  const cells = modes.flatMap((m) => {
    const rs = of(system, m).map((r) => r.result);
    if (!rs.length) return ["", "", ""];
    const cell = (f: (r: Measurement) => number) => median(rs.map(f));
    return [
      cell((r) => r.tokens_per_s).toFixed(0),
      `${cell((r) => r.step_cpu_s).toFixed(2)} s`,
      `${(cell((r) => r.peak_rss_bytes) / 1e9).toFixed(2)} GB`,
    ];
  });
  // The ratio of each round's pair, then the median over the rounds.
  const ratios = modes.map((m) => {
    const pairs = of(first, m).flatMap((mine) => {
      const theirs = of(system, m).find((r) => r.round === mine.round);
      return theirs ? [mine.result.tokens_per_s / theirs.result.tokens_per_s] : [];
    });
    return pairs.length ? `${median(pairs).toFixed(2)}×` : "";
  });
  console.log(`| ${[system, ...cells, ...ratios].join(" | ")} |`);
}
for (const blas of blasSettings) {
  const mine = ceilings.filter((c) => c.blas === blas);
  const ceilingOf = (threads: string) => median(mine.map((c) => c.gflops[threads]!));
  const threadCounts = Object.keys(mine[0]!.gflops);
  console.log(
    `matmul ceiling, LORALAB_BLAS=${blas}: ${threadCounts.map((n) => `${n} thread${n === "1" ? "" : "s"} ${ceilingOf(n).toFixed(1)} GFLOP/s`).join(", ")}`,
  );
  for (const system of new Set(rows.filter((r) => r.blas === blas).map((r) => r.system))) {
    for (const mode of modes) {
      const rs = of(system, mode).map((r) => r.result as Measurement & { gflops: number; workers: number });
      if (!rs.length) continue;
      const gflops = median(rs.map((r) => r.gflops));
      const limit = ceilingOf(String(rs[0]!.workers));
      if (limit) console.log(`  ${system} ${mode}: ${gflops.toFixed(1)} GFLOP/s, ${((100 * gflops) / limit).toFixed(0)} % of the ceiling`);
    }
  }
}
const out = values.out ?? path.join(ROOT, "bench", "results", `compare-${values.config}.json`);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  `${JSON.stringify({ config: values.config, shape, steps: Number(values.steps), rounds, date: new Date().toISOString(), rows, ceilings }, null, 2)}\n`,
);
console.log(`written: ${path.relative(process.cwd(), out)}`);
