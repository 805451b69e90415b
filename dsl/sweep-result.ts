/**
 * What a sweep returns: one record per trial (configuration × seed), the per-configuration statistics (mean,
 * standard deviation, n), the best configuration by its mean, and charts: the objective against a swept key
 * with an error band (± one standard deviation) and error bars, and every trial's loss curve.
 */
import { inspect } from "node:util";
import * as aq from "arquero";
import { DISPLAY, escapeHtml, type MimeBundle } from "../src/runtime/display.js";
import { bestByMean, type ConfigSummary, summarize } from "../src/study/summary.js";
import type { TrialRecord } from "../src/study/trial.js";
import type { GridSpace } from "../src/study/plan.js";
import { digestOf } from "../src/core/canonical.js";
import { displayedText, formatNumber, lossChart, tabulate } from "./presentation.js";

/** A grid point as a label: "r=4, alpha=8". */
export function configLabel(config: Record<string, unknown>): string {
  return Object.entries(config)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

/** The default name: the same space gives the same name, so a re-run finds its trials. */
export function sweepName(space: GridSpace): string {
  const plain = Object.fromEntries(Object.entries(space).map(([k, v]) => [k, typeof v === "function" ? String(v) : v]));
  return `sweep-${digestOf(plain, "space").slice(0, 10)}`;
}

export function objectiveOf(evaluation: { metrics?: readonly string[] } | undefined, objective?: string): string {
  return objective ?? (evaluation ? (evaluation.metrics ?? ["perplexity"])[0]! : "finalLoss");
}

/** Rows as a table, non-integer numbers rounded to `digits` significant digits (as given without `digits`). */
const tableOf = (rows: Record<string, unknown>[], digits: number | undefined): aq.ColumnTable => tabulate(rows, { digits });

/**
 * A configuration's summary that prints as "r=8 (n=3): finalLoss 2.31 ± 0.04, …": its trials (every step of
 * every seed) stay readable as `.trials` but are not enumerated, so printing or spreading it shows the numbers.
 */
function printable(summary: ConfigSummary): ConfigSummary {
  const { trials, ...numbers } = summary;
  const text = () =>
    `${configLabel(numbers.config) || "config"} (n=${numbers.n}): ` +
    Object.keys(numbers.mean)
      .map((k) => `${k} ${formatNumber(numbers.mean[k]!)} ± ${formatNumber(numbers.sd[k]!)}`)
      .join(", ");
  return Object.defineProperties(numbers, {
    trials: { value: trials, enumerable: false },
    [inspect.custom]: { value: text, enumerable: false },
  }) as ConfigSummary;
}

export class SweepResult {
  /** Per configuration: n, mean and sd of the final loss and every eval metric, and the trials. */
  readonly summaries: ConfigSummary[];

  constructor(
    readonly name: string,
    readonly trials: TrialRecord[],
    /** The measure `best` and metricChart() use (an eval metric, or "finalLoss"). */
    readonly objective: string,
  ) {
    this.summaries = summarize(trials);
  }

  /**
   * One row per trial: config, seed, status, trainable params, final train loss, eval metrics, wall time, peak
   * memory (and a failed trial's error). `digits`: numbers rounded to that many significant digits.
   */
  table({ digits }: { digits?: number } = {}): aq.ColumnTable {
    return tableOf(
      this.trials.map((t) => ({
        ...t.config,
        seed: t.seed,
        status: t.status,
        trainable_params: t.trainableParams,
        final_loss: t.finalLoss,
        ...t.metrics,
        wall_s: t.wallSeconds,
        peak_MiB: t.peakTensorMiB,
        ...(t.error ? { error: t.error } : {}),
      })),
      digits,
    );
  }

  /** One row per configuration: n, then the mean and standard deviation of each measure (`perplexity_mean`, `perplexity_sd`, …). */
  summary({ digits }: { digits?: number } = {}): aq.ColumnTable {
    return tableOf(
      this.summaries.map((s) => ({
        ...s.config,
        n: s.n,
        ...Object.fromEntries(
          Object.keys(s.mean).flatMap((k) => [
            [`${k}_mean`, s.mean[k]],
            [`${k}_sd`, s.sd[k]],
          ]),
        ),
      })),
      digits,
    );
  }

  /** One row per configuration: n, and each measure as "mean ± sd" text at `digits` significant digits (default 4). */
  meanSd({ digits = 4 }: { digits?: number } = {}): aq.ColumnTable {
    const text = (x: number) => String(Number(x.toPrecision(digits)));
    return aq.from(
      this.summaries.map((s) => ({
        ...s.config,
        n: s.n,
        ...Object.fromEntries(Object.keys(s.mean).map((k) => [k, `${text(s.mean[k]!)} ± ${text(s.sd[k]!)}`])),
      })),
    );
  }

  /** The configuration with the best mean objective (lowest for losses and perplexity, highest otherwise). */
  get best(): ConfigSummary | undefined {
    const best = bestByMean(this.summaries, this.objective);
    return best && printable(best);
  }

  /** Training-loss curves of all trials overlaid. */
  lossCurves(): Record<string, unknown> {
    const seeds = new Set(this.trials.map((t) => t.seed)).size;
    return lossChart(
      this.trials.flatMap((t) => {
        const series = seeds > 1 ? `${configLabel(t.config)}, seed=${t.seed}` : configLabel(t.config);
        return t.history.map((h) => ({ step: h.step, loss: h.loss, series }));
      }),
      `${this.name}: training loss`,
    );
  }

  /**
   * The objective's mean against a swept key (default: the first), with a band and bars of ± one standard
   * deviation and each seed's value as a dot; trainable parameters and n in the tooltip.
   */
  metricChart(key = Object.keys(this.trials[0]?.config ?? {})[0] ?? "r", measure = this.objective): Record<string, unknown> {
    const numeric = this.summaries.every((s) => typeof s.config[key] === "number");
    const means = this.summaries
      .filter((s) => typeof s.mean[measure] === "number")
      .map((s) => ({
        [key]: s.config[key],
        mean: s.mean[measure],
        low: s.mean[measure]! - s.sd[measure]!,
        high: s.mean[measure]! + s.sd[measure]!,
        sd: s.sd[measure],
        n: s.n,
        trainable_params: s.trials[0]?.trainableParams,
      }));
    const seeds = this.trials
      .filter((t) => t.status === "completed")
      .map((t) => ({ [key]: t.config[key], value: measure === "finalLoss" ? t.finalLoss : t.metrics[measure], seed: t.seed }));
    const positive = numeric && means.every((m) => (m[key] as number) > 0);
    const x = { field: key, type: numeric ? "quantitative" : "ordinal", ...(positive ? { scale: { type: "log", base: 2 } } : {}) };
    const y = { type: "quantitative", title: measure, scale: { zero: false } };
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      title: `${measure} by ${key} (mean ± sd)`,
      width: 360,
      height: 220,
      layer: [
        {
          data: { values: means },
          mark: { type: "errorband", opacity: 0.2 },
          encoding: { x, y: { field: "low", ...y }, y2: { field: "high" } },
        },
        {
          data: { values: means },
          mark: { type: "errorbar", ticks: true },
          encoding: { x, y: { field: "low", ...y }, y2: { field: "high" } },
        },
        {
          data: { values: means },
          mark: { type: "line", point: true },
          encoding: {
            x,
            y: { field: "mean", ...y },
            tooltip: [
              { field: key },
              { field: "mean", title: measure },
              { field: "sd" },
              { field: "n" },
              { field: "trainable_params", title: "trainable params" },
            ],
          },
        },
        {
          data: { values: seeds },
          mark: { type: "point", opacity: 0.5, size: 20 },
          encoding: { x, y: { field: "value", ...y }, tooltip: [{ field: "seed" }, { field: "value", title: measure }] },
        },
      ],
    };
  }

  [inspect.custom](): string {
    return displayedText(this);
  }

  [DISPLAY](): MimeBundle {
    const summary = this.meanSd();
    const failed = this.trials.filter((t) => t.status === "failed");
    const failures = failed.map((t) => `${configLabel({ ...t.config, seed: t.seed })}: ${t.error}`);
    const text = [summary.toMarkdown(), ...failures.map((f) => `failed: ${f}`)].join("\n");
    const html = [summary.toHTML(), ...failures.map((f) => `<p>failed: ${escapeHtml(f)}</p>`)].join("");
    return { "text/plain": text, "text/html": html, "application/vnd.vegalite.v5+json": this.metricChart() };
  }
}
