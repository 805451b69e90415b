/**
 * A code cell's stored outputs as HTML, the way a notebook frontend shows them: streams as text (stderr marked),
 * errors with their traceback, results by their richest MIME type. A vega-lite (or vega) chart becomes a
 * container that the page's script fills with a live vega-embed view; the kernel's PNG of the chart sits inside
 * it, so the chart shows where JavaScript is off and until the view is drawn.
 */
import { Marked } from "marked";
import { escapeHtml } from "../runtime/display.js";
import { joinText, type Output, type OutputData } from "../notebook/nbformat.js";

const markdown = new Marked({ gfm: true });

/** Markdown as HTML (GitHub-flavoured, as Jupyter renders notebook markdown). */
export function renderMarkdown(text: string): string {
  return markdown.parse(text, { async: false });
}

/** Terminal colours in tracebacks (the kernel sends ANSI escapes, as IPython does). */
function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}

const pre = (cls: string, text: string) => `<pre class="${cls}">${escapeHtml(stripAnsi(text))}</pre>`;

const CHART_MIME = /^application\/vnd\.vega(lite)?\.v\d+\+json$/;

/** Collects chart specs while outputs render: the page embeds them once, as JSON, for its script. */
export class ChartList {
  readonly specs: unknown[] = [];

  /** A chart container: `data-chart` indexes the spec; the PNG (if any) is the fallback. */
  container(spec: unknown, png: string | undefined): string {
    const index = this.specs.push(spec) - 1;
    const fallback = png ? `<img class="fallback" alt="chart ${index + 1}" src="data:image/png;base64,${png.replace(/\s/g, "")}">` : "";
    return `<div class="output chart" data-chart="${index}">${fallback}</div>`;
  }
}

function text(data: OutputData, mime: string): string | undefined {
  const value = data[mime];
  return typeof value === "string" || Array.isArray(value) ? joinText(value as string | string[]) : undefined;
}

function renderBundle(data: OutputData, charts: ChartList): string {
  const parts: string[] = [];
  const chartMime = Object.keys(data).find((m) => CHART_MIME.test(m));
  const html = text(data, "text/html");
  if (html !== undefined) parts.push(`<div class="output html">${html}</div>`);
  if (chartMime) parts.push(charts.container(data[chartMime], text(data, "image/png")));
  if (parts.length > 0) return parts.join("\n");
  const image = (["image/png", "image/jpeg"] as const).find((m) => text(data, m) !== undefined);
  if (image) return `<div class="output image"><img alt="" src="data:${image};base64,${text(data, image)!.replace(/\s/g, "")}"></div>`;
  const svg = text(data, "image/svg+xml");
  if (svg !== undefined)
    return `<div class="output image"><img alt="" src="data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}"></div>`;
  const md = text(data, "text/markdown");
  if (md !== undefined) return `<div class="output markdown">${renderMarkdown(md)}</div>`;
  const plain = text(data, "text/plain") ?? text(data, "text/latex");
  if (plain !== undefined) return pre("output text", plain);
  if (data["application/json"] !== undefined) return pre("output text", JSON.stringify(data["application/json"], null, 2));
  return "";
}

export function renderOutput(output: Output, charts: ChartList): string {
  switch (output.output_type) {
    case "stream":
      return pre(`output stream ${output.name}`, joinText(output.text));
    case "error":
      return pre("output error", output.traceback.length > 0 ? output.traceback.join("\n") : `${output.ename}: ${output.evalue}`);
    default:
      return renderBundle(output.data, charts);
  }
}
