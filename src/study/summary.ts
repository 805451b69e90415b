/**
 * Statistics of a study: the trials of one configuration (one grid point, several seeds) summarised by the
 * mean, the sample standard deviation and n of each measure, the per-seed records kept beside them.
 */
import { canonicalJson } from "../core/canonical.js";
import type { TrialRecord } from "./trial.js";

export interface ConfigSummary {
  config: Record<string, unknown>;
  /** Completed trials (seeds) of this configuration. */
  n: number;
  /** finalLoss and every eval metric. */
  mean: Record<string, number>;
  /** Sample standard deviation (n − 1); 0 for a single seed. */
  sd: Record<string, number>;
  trials: TrialRecord[];
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The sample standard deviation (Bessel's n − 1, as numpy's std(ddof=1) and pandas); 0 for one value. */
export function sampleSd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** The measures of a trial: finalLoss and its eval metrics. */
export function measures(t: TrialRecord): Record<string, number> {
  return { ...(t.finalLoss === null ? {} : { finalLoss: t.finalLoss }), ...t.metrics };
}

/** One summary per configuration, in the order configurations first appear; failed trials do not count. */
export function summarize(trials: readonly TrialRecord[]): ConfigSummary[] {
  const groups = new Map<string, TrialRecord[]>();
  for (const t of trials) {
    const key = canonicalJson(t.config, "config");
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  return [...groups.values()].map((group) => {
    const done = group.filter((t) => t.status === "completed");
    const keys = [...new Set(done.flatMap((t) => Object.keys(measures(t))))];
    const values = (k: string) => done.map((t) => measures(t)[k]).filter((v): v is number => typeof v === "number");
    return {
      config: group[0]!.config,
      n: done.length,
      mean: Object.fromEntries(keys.map((k) => [k, mean(values(k))])),
      sd: Object.fromEntries(keys.map((k) => [k, sampleSd(values(k))])),
      trials: group,
    };
  });
}

const lowerIsBetter = (measure: string) => measure === "perplexity" || measure === "loss" || measure === "finalLoss";

/** The configuration with the best mean of `objective` (lower is better for losses and perplexity). */
export function bestByMean(summaries: readonly ConfigSummary[], objective: string): ConfigSummary | undefined {
  const scored = summaries.filter((s) => typeof s.mean[objective] === "number" && Number.isFinite(s.mean[objective]));
  const sign = lowerIsBetter(objective) ? 1 : -1;
  return [...scored].sort((a, b) => sign * (a.mean[objective]! - b.mean[objective]!))[0];
}
