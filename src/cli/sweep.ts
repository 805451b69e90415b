/**
 * `loralab sweep`: the DSL's declarative sweep from the command line, for scripts and CI, e.g.
 *   loralab sweep --model tiny-moby --data train.jsonl --grid r=1,2,4 --seeds 1,2,3 --steps 50 --eval test.jsonl --parallel 2 --json
 * Trials are recorded in the run registry (LORALAB_RUNS_DIR, default ./runs) and reused by digest.
 */
import { check, invalid, positiveInt } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { Dataset } from "../data/dataset.js";
import { parseLoraSpec } from "../lora/config.js";
import { inlineExecutor, type Executor } from "../study/executor.js";
import { ModelPool } from "../study/model-pool.js";
import { planTrials } from "../study/plan.js";
import { processExecutor } from "../study/processes.js";
import { queueExecutor } from "../study/queue.js";
import { runStudy, type StudyEvent } from "../study/study.js";
import { summarize } from "../study/summary.js";
import type { TrialRecord } from "../study/trial.js";
import { parseRedisUrl } from "../study/redis.js";
import { numberFlag, parseCommandArgs, requireOption } from "./args.js";
import { backendOption, printJson } from "./common.js";
import { parseGrid } from "./grid.js";
import { trainingFlags, trainingFlagsHelp, trainingOptionsFromFlags } from "./training-flags.js";

const usage = `usage: loralab sweep --model M --data FILE --grid KEY=V1,V2,… [--grid …] [--seeds 1,2,3] [training options]
                     [--lora key=value,…] [--eval FILE] [--metrics perplexity,…] [--queue URL | --parallel N]
                     [--name NAME] [--fresh] [--json]

  --grid KEY=V1,V2,…   a LoRA key (r, alpha, dropout, targets=q_proj+v_proj, …), a training option (lr, batch, steps, …) or seed
  --seeds 1,2,3        run every configuration once per seed (the table gives mean, sd and n)
  --lora key=value,…   LoRA options every trial shares
  --eval FILE          evaluated after training (default metric: perplexity)
  --queue URL          submit the trials to a BullMQ queue on Redis (or LORALAB_QUEUE) for \`loralab worker\`s
  --parallel N         run trials in N worker processes on this machine (default: one after another in this process)
  --name NAME          the sweep's name in the registry (default: sweep)
  --fresh              train every trial again, even those the registry holds
  --json               {"trials": [...], "summary": [{"config", "n", "mean", "sd"}]}

Trials are recorded in the run registry (LORALAB_RUNS_DIR, default ./runs); a trial already there is not trained again.
Exit code 3 when some trial failed (its error is in the table and in --json).

training options:
${trainingFlagsHelp().join("\n")}`;

const integer = check<number>("a list of integers", Number.isInteger);
const round = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(4));

function progressLine(e: StudyEvent, label: (digest: string) => string): string | undefined {
  if (e.type === "cached") return `${label(e.digest)}: reused (${e.record.runId})`;
  if (e.type === "failed") return `${label(e.digest)}: failed: ${e.error}`;
  if (e.type === "completed") {
    const r = e.outcome.record;
    return `${label(e.digest)}: final loss ${r.finalLoss === null ? "n/a" : round(r.finalLoss)} (${r.wallSeconds.toFixed(1)} s)`;
  }
  return undefined;
}

function trialJson(t: TrialRecord): Record<string, unknown> {
  return {
    config: t.config,
    seed: t.seed,
    finalLoss: t.finalLoss,
    metrics: t.metrics,
    status: t.status,
    ...(t.error ? { error: t.error } : {}),
    ...(t.runId ? { runId: t.runId } : {}),
    digest: t.digest,
  };
}

function summaryText(records: TrialRecord[]): string {
  const rows = summarize(records).map((s) => {
    const config = Object.entries(s.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    const stats = Object.keys(s.mean).map((k) => `${k} ${round(s.mean[k]!)} ± ${round(s.sd[k]!)}`);
    return `${config.join(" ")}  n=${s.n}  ${stats.join("  ")}`;
  });
  const failed = records
    .filter((t) => t.status === "failed")
    .map((t) => `failed: ${JSON.stringify({ ...t.config, seed: t.seed })}: ${t.error}`);
  return [...rows, ...failed].join("\n");
}

export async function sweepCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    ...backendOption,
    ...trainingFlags,
    model: { type: "string" },
    data: { type: "string" },
    grid: { type: "string", multiple: true },
    seeds: { type: "string" },
    lora: { type: "string" },
    eval: { type: "string" },
    metrics: { type: "string" },
    queue: { type: "string" },
    parallel: { type: "string" },
    name: { type: "string" },
    fresh: { type: "boolean" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const model = requireOption(values.model, "--model");
  const dataFile = requireOption(values.data, "--data");
  const grid = parseGrid(values.grid ?? []);
  const { given } = trainingOptionsFromFlags(values);
  const seeds = values.seeds?.split(",").map((t) => numberFlag("--seeds", t, integer, 0));
  const queue = values.queue ?? (process.env.LORALAB_QUEUE || undefined);
  if (queue !== undefined) parseRedisUrl(queue, values.queue !== undefined ? "--queue" : "LORALAB_QUEUE");
  const parallel = numberFlag("--parallel", values.parallel, positiveInt, 1);
  if (queue !== undefined && values.parallel !== undefined)
    throw new UserError("--queue and --parallel: give one (the queue's workers decide their parallelism)");
  if (values.metrics !== undefined && values.eval === undefined)
    throw invalid("", "--eval", "a file to evaluate the --metrics on", undefined);
  if (seeds && "seed" in grid) throw new UserError("--grid seed and --seeds: give one");
  if (seeds && given.seed !== undefined) throw new UserError("--seeds and --seed: give one");
  const lora = values.lora ? parseLoraSpec(values.lora) : {};
  const trials = planTrials(grid, {
    model,
    data: Dataset.load(dataFile),
    lora,
    train: given,
    eval:
      values.eval === undefined ? undefined : { data: Dataset.load(values.eval), metrics: values.metrics?.split(",") ?? ["perplexity"] },
    seeds,
  });
  const executor: Executor =
    queue !== undefined
      ? queueExecutor(queue, { fresh: values.fresh })
      : values.parallel !== undefined
        ? processExecutor(parallel, values.backend)
        : inlineExecutor(new ModelPool(values.backend));
  const labels = new Map(
    trials.map((t) => [
      t.digest,
      Object.entries({ ...t.config, seed: t.seed })
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(" "),
    ]),
  );
  const quiet = Boolean(values.json);
  if (!quiet) console.error(`sweep ${values.name ?? "sweep"}: ${trials.length} trials on ${executor.description}`);
  const abort = new AbortController(); // Ctrl-C stops after the running trials' current step; finished trials stay recorded
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  let records: TrialRecord[];
  try {
    records = await runStudy(trials, {
      name: values.name ?? "sweep",
      executor,
      fresh: values.fresh,
      signal: abort.signal,
      onEvent: (e) => {
        const line = quiet ? undefined : progressLine(e, (d) => labels.get(d) ?? d);
        if (line) console.error(line);
      },
    });
  } finally {
    process.off("SIGINT", onSigint);
  }
  if (values.json) {
    printJson({
      trials: records.map(trialJson),
      summary: summarize(records).map((s) => ({ config: s.config, n: s.n, mean: s.mean, sd: s.sd })),
    });
  } else console.log(summaryText(records));
  return records.some((t) => t.status === "failed") ? 3 : 0;
}
