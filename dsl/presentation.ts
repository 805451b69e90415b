/** How DSL objects present themselves: key/value tables (text and HTML) and loss charts (vega-lite). */
import * as aq from "arquero";
import { DISPLAY, escapeHtml, type MimeBundle } from "../src/runtime/display.js";

/** The rows a run's display starts with, for a run in this session and for one read back from the registry alike. */
export function runRows(id: string, status: string, steps: string, finalLoss: number | undefined): [string, unknown][] {
  return [
    ["id", id],
    ["status", status],
    ["steps", steps],
    ["final loss", finalLoss?.toFixed(4) ?? "n/a"],
  ];
}

/** What console.log and util.inspect print for a DSL object: the text its display shows, not its internals. */
export function displayedText(value: { [DISPLAY](): MimeBundle }): string {
  return String(value[DISPLAY]()["text/plain"] ?? "");
}

/** A two-column HTML table of key/value pairs. */
export function htmlKeyValues(title: string, rows: [string, unknown][]): string {
  const body = rows
    .map(([k, v]) => `<tr><th style="text-align:left">${escapeHtml(k)}</th><td style="text-align:left">${escapeHtml(String(v))}</td></tr>`)
    .join("");
  return `<div><strong>${escapeHtml(title)}</strong><table>${body}</table></div>`;
}

export function textKeyValues(title: string, rows: [string, unknown][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return [title, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${String(v)}`)].join("\n");
}

/** A vega-lite v5 line chart of loss against step (one line per series). */
export function lossChart(points: { step: number; loss: number; series: string }[], title = "training loss"): Record<string, unknown> {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    width: 420,
    height: 240,
    data: { values: points },
    mark: { type: "line", point: points.length <= 50 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field: "loss", type: "quantitative", title: "loss", scale: { zero: false } },
      // Series in the order they come (r=1, r=2, …, r=16, not alphabetically), names shown whole (not cut at 160 px).
      color: {
        field: "series",
        type: "nominal",
        title: null,
        sort: [...new Set(points.map((p) => p.series))],
        legend: { labelLimit: 400 },
      },
    },
  };
}

/** A number as tables and summaries show it: integers in full with separators, others at 4 significant digits. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const digits = Math.abs(x) >= 1e-3 && Math.abs(x) < 1e6 ? Number(x.toPrecision(4)).toString() : x.toExponential(3);
  return digits;
}

/**
 * Rows as an arquero table (what notebooks show as a table), non-integer numbers rounded to `digits` significant
 * digits (kept as given without `digits`): `tabulate([{ method: "lora", perplexity: 37.51234 }], { digits: 4 })`.
 */
export function tabulate(rows: readonly Record<string, unknown>[], { digits }: { digits?: number } = {}): aq.ColumnTable {
  if (digits === undefined) return aq.from(rows as Record<string, unknown>[]);
  const round = (v: unknown) => (typeof v === "number" && !Number.isInteger(v) && Number.isFinite(v) ? Number(v.toPrecision(digits)) : v);
  return aq.from(rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, round(v)]))));
}
