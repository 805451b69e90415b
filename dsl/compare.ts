/**
 * compare: fine-tuning methods side by side, measured. Each method trains on the same data with the
 * same options; the table reports trainable parameters, their share of the model's parameters (PEFT's
 * trainable%), peak tensor memory, median step time, final training loss and the eval metric.
 *
 *   compare({ full: base.full(), lora: base.lora(8) }, ds, { maxSteps: 50, eval: { data: test } })
 */
import * as aq from "arquero";
import { median } from "../src/core/stats.js";
import type { DataInput } from "./data.js";
import { lossChart } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import type { Metric, TrainedRun } from "./model.js";
import type { TrainOptions } from "./run.js";

/** What `base.lora(…)` and `base.full()` are: something that trains a run. */
export interface RunBuilder {
  train(data: DataInput, options?: TrainOptions): Promise<TrainedRun>;
}

export interface CompareOptions extends TrainOptions {
  eval?: { data: DataInput; metrics?: Metric[] };
}

export class Comparison {
  constructor(
    readonly runs: Record<string, TrainedRun>,
    readonly metrics: Record<string, Record<string, number | undefined>>,
  ) {}

  table(): aq.ColumnTable {
    return aq.from(
      Object.entries(this.runs).map(([method, run]) => {
        const steps = run.history.map((h, i) => (h.elapsedSeconds - (run.history[i - 1]?.elapsedSeconds ?? 0)) * 1000);
        return {
          method,
          trainable_params: run.trainableParams,
          trainable_pct: run.parameters.percent,
          peak_MiB: run.peakTensorBytes / 2 ** 20,
          median_step_ms: median(steps),
          final_loss: run.finalLoss ?? null,
          ...this.metrics[method],
        };
      }),
    );
  }

  chart(): Record<string, unknown> {
    return lossChart(
      Object.entries(this.runs).flatMap(([method, run]) => run.history.map((h) => ({ step: h.step, loss: h.loss, series: method }))),
      "training loss by method",
    );
  }

  [DISPLAY](): MimeBundle {
    const table = this.table();
    return { "text/plain": table.toMarkdown(), "text/html": table.toHTML(), "application/vnd.vegalite.v5+json": this.chart() };
  }
}

export async function compare(methods: Record<string, RunBuilder>, data: DataInput, options: CompareOptions = {}): Promise<Comparison> {
  const { eval: evaluation, ...trainOptions } = options;
  const runs: Record<string, TrainedRun> = {};
  const metrics: Record<string, Record<string, number | undefined>> = {};
  for (const [method, builder] of Object.entries(methods)) {
    const run = await builder.train(data, { ...trainOptions, name: trainOptions.name ?? method });
    runs[method] = run;
    if (evaluation) {
      const { examples: _e, ...m } = await run.model.eval(evaluation.data, evaluation.metrics ?? ["perplexity"]);
      metrics[method] = m as Record<string, number | undefined>;
    }
  }
  return new Comparison(runs, metrics);
}
