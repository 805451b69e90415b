/**
 * What `.eval(...)` returns: the metrics as plain enumerable fields (so `{ ...result }`, JSON and destructuring see
 * numbers only) and, for generation metrics, the per-example table as a non-enumerable `examples` field, so that a
 * result printed inside another object shows its numbers and the table's size, not arquero's internals.
 */
import { inspect } from "node:util";
import type * as aq from "arquero";
import type { EvalScores } from "../src/metrics/evaluate.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import { formatNumber, htmlKeyValues, textKeyValues } from "./presentation.js";

export type { Metric } from "../src/metrics/evaluate.js";

/** Rows of the examples table shown in a notebook (all rows stay in `examples`). */
const SHOWN_EXAMPLES = 20;

/** The numbers of an evaluation (what `{ ...result }` holds). */
export type EvalMetrics = Omit<EvalScores, "examples">;

export class EvalResult implements EvalMetrics {
  // Declared, not initialised: a metric that was not asked for is absent, not `undefined`.
  declare perplexity?: number;
  declare loss?: number;
  declare tokens?: number;
  declare bleu?: number;
  declare chrf?: number;
  declare exact_match?: number;
  /** Per-example prompt, completion and generation of generation metrics, as an arquero table. */
  declare readonly examples?: aq.ColumnTable;

  constructor(metrics: EvalMetrics, examples?: aq.ColumnTable) {
    Object.assign(this, metrics);
    if (examples) Object.defineProperty(this, "examples", { value: examples, enumerable: false });
  }

  private rows(): [string, string][] {
    const rows: [string, string][] = Object.entries(this).map(([k, v]) => [k, typeof v === "number" ? formatNumber(v) : String(v)]);
    if (this.examples) rows.push(["examples", `${this.examples.numRows()} rows (.examples)`]);
    return rows;
  }

  [inspect.custom](): string {
    return `EvalResult { ${this.rows()
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ")} }`;
  }

  [DISPLAY](): MimeBundle {
    const rows = this.rows();
    const more =
      this.examples && this.examples.numRows() > SHOWN_EXAMPLES
        ? `<p>first ${SHOWN_EXAMPLES} of ${this.examples.numRows()} examples</p>`
        : "";
    return {
      "text/plain": textKeyValues("EvalResult", rows),
      "text/html": htmlKeyValues("EvalResult", rows) + (this.examples ? this.examples.toHTML({ limit: SHOWN_EXAMPLES }) + more : ""),
    };
  }
}
