/**
 * compare: fine-tuning methods side by side, measured. Each method trains on the same data; options shared by
 * all methods come from compare's options, and each method may add its own (a learning rate that suits full
 * fine-tuning starves LoRA). The table reports, per method, the options it trained with, trainable parameters
 * and their share of the model (PEFT's trainable%), measured memory (weights by storage format, optimizer state,
 * a step's activation peak, peak tensor memory, process RSS), median step time, final training loss and the
 * eval metrics.
 *
 *   compare({ full: [base.full(), { lr: 2e-4 }], lora: [base.lora(8), { lr: 2e-3 }], qlora: base.qlora(8) }, ds, { maxSteps: 50 })
 */
import { inspect } from "node:util";
import * as aq from "arquero";
import { median } from "../src/core/stats.js";
import { UserError } from "../src/core/errors.js";
import type { DataInput } from "./data.js";
import { displayedText, lossChart, tabulate } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import type { Metric, TrainedRun } from "./model.js";
import type { TrainOptions } from "./run.js";
import type { FormatShare } from "../src/models/memory-estimate.js";

/** What `base.lora(…)`, `base.qlora(…)` and `base.full()` are: something that trains a run. */
export interface RunBuilder {
  /** "lora", "qlora" or "full": picks the method's default learning rate (METHOD_DEFAULTS). */
  readonly kind?: string;
  train(data: DataInput, options?: TrainOptions): Promise<TrainedRun>;
}

/** A method: a builder, or a builder with options of its own (they override compare's shared options). */
export type Method = RunBuilder | readonly [RunBuilder, TrainOptions];

/**
 * Learning rates a method gets when neither compare's options nor the method's own give one. LoRA's best rate is
 * about ten times full fine-tuning's (measured on tiny-moby, cmudict, 100 steps: LoRA r=8 at 2e-4 ends at held-out
 * perplexity 1004, at 3e-3 at 37.5; full fine-tuning at 2e-4 at 7.95).
 */
export const METHOD_DEFAULTS: Readonly<Record<string, TrainOptions>> = { full: { lr: 2e-4 }, lora: { lr: 2e-3 }, qlora: { lr: 2e-3 } };

export interface CompareOptions extends TrainOptions {
  eval?: { data: DataInput; metrics?: Metric[] };
}

/** The training options shown per method: the ones comparisons usually vary. */
const SHOWN = ["lr", "batchSize", "gradAccum", "epochs", "maxSteps"] as const;

function optionsText(run: TrainedRun): string {
  const o = run.trainingOptions;
  return SHOWN.filter((k) => o[k] !== undefined && !(k === "epochs" && o.maxSteps !== undefined))
    .map((k) => `${k}=${o[k]}`)
    .join(", ");
}

const MiB = 2 ** 20;

/** "nf4+dq 0.4 MiB, f32 0.5 MiB": the weights by storage format, largest first. */
function formatsText(weights: Record<string, FormatShare>): string {
  return Object.entries(weights)
    .sort(([, a], [, b]) => b.bytes - a.bytes)
    .map(([format, s]) => `${format} ${(s.bytes / MiB).toFixed(1)} MiB`)
    .join(", ");
}

export class Comparison {
  constructor(
    readonly runs: Record<string, TrainedRun>,
    readonly metrics: Record<string, Record<string, number | undefined>>,
  ) {}

  /** One row per method; `digits`: non-integer numbers rounded to that many significant digits. */
  table({ digits }: { digits?: number } = {}): aq.ColumnTable {
    return tabulate(
      Object.entries(this.runs).map(([method, run]) => {
        const steps = run.history.map((h, i) => (h.elapsedSeconds - (run.history[i - 1]?.elapsedSeconds ?? 0)) * 1000);
        const memory = run.memory;
        const weights = Object.values(memory.weights).reduce((sum, s) => sum + s.bytes, 0);
        return {
          method,
          options: optionsText(run),
          trainable_params: run.trainableParams,
          trainable_pct: run.parameters.percent,
          weights_MiB: weights / MiB,
          weight_formats: formatsText(memory.weights),
          optimizer_MiB: memory.optimizerBytes / MiB,
          activations_MiB: memory.activationPeakBytes / MiB,
          peak_MiB: run.peakTensorBytes / MiB,
          rss_MiB: memory.rssBytes / MiB,
          median_step_ms: median(steps),
          final_loss: run.finalLoss ?? null,
          ...this.metrics[method],
        };
      }),
      { digits },
    );
  }

  chart(): Record<string, unknown> {
    return lossChart(
      Object.entries(this.runs).flatMap(([method, run]) => run.history.map((h) => ({ step: h.step, loss: h.loss, series: method }))),
      "training loss by method",
    );
  }

  [inspect.custom](): string {
    return displayedText(this);
  }

  [DISPLAY](): MimeBundle {
    const table = this.table();
    return { "text/plain": table.toMarkdown(), "text/html": table.toHTML(), "application/vnd.vegalite.v5+json": this.chart() };
  }
}

function unpack(name: string, method: Method): [RunBuilder, TrainOptions] {
  const [builder, own] = Array.isArray(method) ? (method as readonly [RunBuilder, TrainOptions]) : [method as RunBuilder, {}];
  if (typeof builder?.train !== "function") {
    throw new UserError(`compare: ${name}: expected base.lora(…), base.full() or [builder, { options }], got ${typeof builder}`);
  }
  return [builder, own ?? {}];
}

export async function compare(methods: Record<string, Method>, data: DataInput, options: CompareOptions = {}): Promise<Comparison> {
  const { eval: evaluation, ...shared } = options;
  const plan = Object.entries(methods).map(([name, method]) => [name, ...unpack(name, method)] as const);
  const runs: Record<string, TrainedRun> = {};
  const metrics: Record<string, Record<string, number | undefined>> = {};
  for (const [name, builder, own] of plan) {
    const defaults = METHOD_DEFAULTS[builder.kind ?? ""] ?? {};
    const run = await builder.train(data, { ...defaults, ...shared, name: shared.name ?? name, ...own });
    runs[name] = run;
    if (evaluation) {
      const { examples: _e, ...m } = await run.model.eval(evaluation.data, evaluation.metrics ?? ["perplexity"]);
      metrics[name] = m as Record<string, number | undefined>;
    }
  }
  return new Comparison(runs, metrics);
}
