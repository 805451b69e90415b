/**
 * sweep: train one configuration per point of a grid, evaluate each, and tabulate.
 *
 *   sweep({ r: [1, 2, 4, 8], alpha: ({ r }) => 2 * r }, (cfg) => base.lora(cfg).train(ds, opts),
 *         { eval: { data: test, metrics: ["perplexity"] } })
 *
 * Every finished trial is written to runs/sweeps/<name>/<trial>.json (atomically), so re-running an
 * interrupted sweep skips the trials that finished and trains only the missing ones.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import * as aq from "arquero";
import { writeFileAtomic } from "../src/core/files.js";
import type { DataInput } from "./data.js";
import { lossChart } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import type { EvalMetrics, Metric, TrainedRun } from "./model.js";
import { runsDirectory } from "./run.js";

/**
 * Keys with a list of values span the grid; keys with a function derive their value from a point
 * (e.g. `alpha: ({ r }) => 2 * r`). Points are loosely typed (`any`) so that such functions and
 * `cfg => base.lora(cfg)` need no type annotations in notebook cells.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type SweepConfig = Record<string, any>;
export type SweepSpace = Record<string, readonly unknown[] | ((config: SweepConfig) => unknown)>;

export interface SweepOptions {
  eval?: { data: DataInput; metrics?: Metric[] };
  /** Names the sweep's folder; default: derived from the space, so the same sweep finds its trials again. */
  name?: string;
  runsDir?: string;
  /** Which eval metric picks the best trial (lower is better for perplexity/loss, higher otherwise). */
  objective?: string;
}

export interface TrialRecord {
  trial: string;
  config: Record<string, unknown>;
  trainableParams: number;
  finalLoss: number | null;
  metrics: EvalMetrics;
  wallSeconds: number;
  peakTensorMiB: number;
  history: { step: number; loss: number }[];
}

/** The grid: every combination of the array-valued keys, then the function-valued keys derived from it. */
export function expandSpace(space: SweepSpace): SweepConfig[] {
  let points: SweepConfig[] = [{}];
  for (const [key, values] of Object.entries(space)) {
    if (typeof values === "function") continue;
    points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  }
  return points.map((p) => {
    const out = { ...p };
    for (const [key, f] of Object.entries(space)) if (typeof f === "function") out[key] = f(out);
    return out;
  });
}

function digest(value: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(value, (_, v) => (typeof v === "function" ? String(v) : v)))
    .digest("hex")
    .slice(0, 10);
}

const lowerIsBetter = (metric: string) => metric === "perplexity" || metric === "loss";

export class SweepResult {
  constructor(
    readonly name: string,
    readonly trials: TrialRecord[],
    readonly objective: string,
  ) {}

  /** One row per trial: config, trainable params, final train loss, eval metrics, wall time, peak memory. */
  table(): aq.ColumnTable {
    return aq.from(
      this.trials.map((t) => ({
        ...t.config,
        trainable_params: t.trainableParams,
        final_loss: t.finalLoss,
        ...t.metrics,
        wall_s: t.wallSeconds,
        peak_MiB: t.peakTensorMiB,
      })),
    );
  }

  get best(): TrialRecord | undefined {
    const score = (t: TrialRecord) =>
      (t.metrics as Record<string, number | undefined>)[this.objective] ?? (this.objective === "loss" ? t.finalLoss : undefined);
    const scored = this.trials.filter((t) => typeof score(t) === "number");
    const sign = lowerIsBetter(this.objective) ? 1 : -1;
    return scored.sort((a, b) => sign * (score(a)! - score(b)!))[0];
  }

  private label(t: TrialRecord): string {
    return Object.entries(t.config)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
  }

  /** Training-loss curves of all trials overlaid. */
  lossCurves(): Record<string, unknown> {
    return lossChart(
      this.trials.flatMap((t) => t.history.map((h) => ({ ...h, series: this.label(t) }))),
      `${this.name}: training loss`,
    );
  }

  /** The objective against the first swept key (e.g. rank), with trainable parameters in the tooltip. */
  metricChart(key = Object.keys(this.trials[0]?.config ?? {})[0] ?? "r"): Record<string, unknown> {
    const values = this.trials.map((t) => ({
      [key]: t.config[key],
      value: (t.metrics as Record<string, unknown>)[this.objective] ?? t.finalLoss,
      trainable_params: t.trainableParams,
    }));
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      title: `${this.objective} by ${key}`,
      width: 360,
      height: 220,
      data: { values },
      mark: { type: "line", point: true },
      encoding: {
        x: { field: key, type: "quantitative", scale: { type: "log", base: 2 } },
        y: { field: "value", type: "quantitative", title: this.objective, scale: { zero: false } },
        tooltip: [{ field: key }, { field: "value", title: this.objective }, { field: "trainable_params", title: "trainable params" }],
      },
    };
  }

  [DISPLAY](): MimeBundle {
    const table = this.table();
    return { "text/plain": table.toMarkdown(), "text/html": table.toHTML(), "application/vnd.vegalite.v5+json": this.metricChart() };
  }
}

export async function sweep(
  space: SweepSpace,
  train: (config: SweepConfig) => Promise<TrainedRun>,
  options: SweepOptions = {},
): Promise<SweepResult> {
  const name = options.name ?? `sweep-${digest(space)}`;
  const dir = path.join(runsDirectory(options.runsDir) ?? path.resolve("runs"), "sweeps", name);
  fs.mkdirSync(dir, { recursive: true });
  const records: TrialRecord[] = [];
  for (const config of expandSpace(space)) {
    const trial = digest(config);
    const file = path.join(dir, `${trial}.json`);
    if (fs.existsSync(file)) {
      records.push(JSON.parse(fs.readFileSync(file, "utf8")) as TrialRecord);
      continue;
    }
    const started = performance.now();
    const run = await train(config);
    const metrics: EvalMetrics = options.eval
      ? { ...(await run.model.eval(options.eval.data, options.eval.metrics ?? ["perplexity"])) }
      : {};
    const record: TrialRecord = {
      trial,
      config,
      trainableParams: run.trainableParams,
      finalLoss: run.finalLoss ?? null,
      metrics,
      wallSeconds: (performance.now() - started) / 1000,
      peakTensorMiB: run.peakTensorBytes / 2 ** 20,
      history: run.history.map((h) => ({ step: h.step, loss: h.loss })),
    };
    await writeFileAtomic(file, `${JSON.stringify(record)}\n`);
    records.push(record);
  }
  return new SweepResult(name, records, options.objective ?? (options.eval ? (options.eval.metrics ?? ["perplexity"])[0]! : "loss"));
}
