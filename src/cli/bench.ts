/**
 * `loralab bench`: throughput measurements.
 *
 *   --mode forward (default without --config)  forward passes per backend, each in its own process
 *   --mode lora|qlora|full --config tiny|small|135m    training steps of a named shape (one JSON line with --json)
 *   --mode lora,qlora,full                       several, each in its own process, side by side
 *   --mode matmul [--config small]               the 2-D matmul ceiling of the config's products, 1 thread and all cores
 *   --mode eval [--config small]                 perplexity and generation in one thread and on the cores (--workers)
 */
import { formatBytes } from "../backend/memory.js";
import { UserError } from "../core/errors.js";
import { isPositiveInt, parseCommandArgs, parseNumberOption } from "./args.js";
import { printJson } from "./common.js";
import { forwardBench, forwardWorker, type ForwardBenchOptions } from "./bench-forward.js";
import { matmulCeiling } from "./bench-ceiling.js";
import { evalBench, type EvalBenchPart } from "./bench-eval.js";
import { type BenchShape, benchShape, runWorkers } from "./bench-setup.js";
import type { WorkersOption } from "../train/parallelism.js";
import { TRAIN_MODES, trainBench, type TrainBenchResult, type TrainMode } from "./bench-train.js";

const OPTIONS = {
  mode: { type: "string" },
  config: { type: "string" },
  model: { type: "string" },
  backends: { type: "string", default: "wasm,cpu" },
  backend: { type: "string" },
  batch: { type: "string" },
  seq: { type: "string" },
  repeats: { type: "string" },
  steps: { type: "string" },
  prompts: { type: "string" },
  "new-tokens": { type: "string" },
  workers: { type: "string" },
  profile: { type: "boolean" },
  "gradient-checkpointing": { type: "boolean" },
  json: { type: "boolean" },
  worker: { type: "string" },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof OPTIONS>>["values"];

const positive = (flag: string, value: string | undefined, fallback: number) =>
  parseNumberOption(flag, value, fallback, isPositiveInt, "a positive integer");

function trainModes(mode: string): TrainMode[] {
  const modes = mode.split(",");
  for (const m of modes) {
    if (!(TRAIN_MODES as readonly string[]).includes(m))
      throw new UserError(`--mode: expected forward, matmul, eval, or lora, qlora, full or a comma-separated list of them, got "${mode}"`);
  }
  return modes as TrainMode[];
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

/** "f32 3.3 MiB + nf4+dq 0.4 MiB": the weights by storage format. */
const weights = (r: TrainBenchResult) =>
  Object.entries(r.memory.weights)
    .map(([format, share]) => `${format} ${formatBytes(share.bytes)}`)
    .join(" + ");

function describe(r: TrainBenchResult): string {
  const line =
    `${r.mode.padEnd(5)} ${r.tokens_per_s.toFixed(1).padStart(8)} tokens/s  step ${r.step_s.toFixed(2)} s (CPU ${r.step_cpu_s.toFixed(2)} s)  ` +
    `${r.gflops.toFixed(1)} GFLOP/s  peak RSS ${gb(r.peak_rss_bytes)}  weights ${weights(r)}  optimizer ${formatBytes(r.memory.optimizer_bytes)}`;
  if (!r.profile) return line;
  const shares = Object.entries(r.profile.share).map(([k, v]) => `${k} ${(100 * v).toFixed(1)} %`);
  const heap = r.profile.peak_step_heap_bytes === undefined ? "" : `; step heap peak ${gb(r.profile.peak_step_heap_bytes)}`;
  return `${line}\n    ${shares.join(", ")}${heap}`;
}

const onWorkers = (r: TrainBenchResult) => `, ${r.workers} thread${r.workers > 1 ? "s" : ""}, ${r.matmul}`;

/** --workers N or auto (the default: what the Trainer picks for the run on this machine). */
function workersOption(text: string | undefined): WorkersOption {
  if (text === undefined || text === "auto") return "auto";
  return parseNumberOption("--workers", text, 1, isPositiveInt, 'a positive integer or "auto"');
}

/** The named shape of --config (default small), with --batch and --seq applied. */
function shapeOption(values: Values): { name: string; shape: BenchShape } {
  const name = values.config ?? "small";
  const base = benchShape(name);
  return { name, shape: { ...base, batch: positive("--batch", values.batch, base.batch), seq: positive("--seq", values.seq, base.seq) } };
}

async function train(values: Values): Promise<number> {
  const { name, shape } = shapeOption(values);
  const steps = positive("--steps", values.steps, 5);
  const workers = workersOption(values.workers);
  const modes = trainModes(values.mode ?? "lora");
  const run = (mode: TrainMode) =>
    trainBench(name, {
      shape,
      mode,
      steps,
      workers,
      backend: values.backend,
      profile: values.profile ?? false,
      gradientCheckpointing: values["gradient-checkpointing"] ?? false,
    });
  if (values.worker) {
    printJson(await run(trainModes(values.worker)[0]!));
    return 0;
  }
  if (modes.length === 1) {
    const result = await run(modes[0]!);
    if (values.json) printJson(result);
    else
      console.log(
        `${name}, batch ${shape.batch} × ${shape.seq}, median of ${steps} steps, ${result.backend}${onWorkers(result)}\n  ${describe(result)}`,
      );
    return 0;
  }
  const forwarded = [
    "--config",
    name,
    "--batch",
    String(shape.batch),
    "--seq",
    String(shape.seq),
    "--steps",
    String(steps),
    "--workers",
    String(workers),
  ];
  if (values.backend) forwarded.push("--backend", values.backend);
  if (values.profile) forwarded.push("--profile");
  if (values["gradient-checkpointing"]) forwarded.push("--gradient-checkpointing");
  const results = runWorkers<TrainBenchResult>(
    modes,
    (mode) => [...forwarded, "--worker", mode],
    (mode) => `--mode ${mode}`,
  );
  if (values.json) printJson(results);
  else {
    console.log(`${name}, batch ${shape.batch} × ${shape.seq}, median of ${steps} steps, ${results[0]!.backend}${onWorkers(results[0]!)}`);
    for (const r of results) console.log(`  ${describe(r)}`);
    const [a, b] = results;
    if (a && b)
      console.log(
        `  ${a.mode}/${b.mode}: step ${(a.step_s / b.step_s).toFixed(2)}×, peak RSS ${(a.peak_rss_bytes / b.peak_rss_bytes).toFixed(2)}×`,
      );
  }
  return 0;
}

async function ceiling(values: Values): Promise<number> {
  const { name, shape } = shapeOption(values);
  const workers = workersOption(values.workers);
  const threads = workers === "auto" ? undefined : workers;
  const result = await matmulCeiling(shape, { threads, backend: values.backend, trials: positive("--repeats", values.repeats, 3) });
  if (values.json) printJson({ config: name, ...result });
  else {
    const counts = Object.entries(result.gflops).map(([n, g]) => `${n} thread${n === "1" ? "" : "s"} ${g.toFixed(1)} GFLOP/s`);
    console.log(`${name}'s linear products, ${result.rows} rows each, ${result.backend}, ${result.matmul}: ${counts.join(", ")}`);
  }
  return 0;
}

/** "1 thread 12.3 s, 2 threads 6.9 s (2 cores): 1.78×, same numbers" */
function describeParts(part: EvalBenchPart): string {
  const threads = `${part.threads} thread${part.threads === 1 ? "" : "s"}`;
  const same = part.same ? "same numbers" : "NUMBERS DIFFER";
  return `1 thread ${part.one_thread_s.toFixed(2)} s, ${threads} ${part.threaded_s.toFixed(2)} s (${part.why}): ${part.speedup.toFixed(2)}×, ${same}`;
}

async function evaluation(values: Values): Promise<number> {
  const { name, shape } = shapeOption(values);
  const result = await evalBench(name, {
    shape,
    batches: positive("--steps", values.steps, 8),
    prompts: positive("--prompts", values.prompts, 8),
    newTokens: positive("--new-tokens", values["new-tokens"], 32),
    workers: workersOption(values.workers),
    repeats: positive("--repeats", values.repeats, 3),
    backend: values.backend,
  });
  if (values.json) printJson(result);
  else {
    console.log(`${name}, ${result.backend}, ${result.matmul}, medians of the runs (threaded times include starting the replicas)`);
    console.log(
      `  perplexity of ${result.perplexity.tokens} tokens (batches of ${shape.batch} × ${shape.seq}): ${describeParts(result.perplexity)}`,
    );
    console.log(`  generation of ${result.generation.new_tokens} tokens: ${describeParts(result.generation)}`);
  }
  return result.perplexity.same && result.generation.same ? 0 : 1;
}

export async function bench(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, OPTIONS);
  const mode = values.mode ?? (values.config ? "lora" : "forward");
  if (mode === "matmul") return ceiling(values);
  if (mode === "eval") return evaluation(values);
  if (mode !== "forward") return train({ ...values, mode });
  const options: ForwardBenchOptions = {
    model: values.model,
    backends: values.backends.split(","),
    batch: positive("--batch", values.batch, 4),
    seq: positive("--seq", values.seq, 128),
    repeats: positive("--repeats", values.repeats, 7),
    json: values.json ?? false,
  };
  if (values.worker) {
    printJson(await forwardWorker(values.worker, options));
    return 0;
  }
  return forwardBench(options);
}
