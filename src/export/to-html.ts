/**
 * `loralab export NB.ipynb --to html`: the notebook as one standalone page. Markdown rendered, code highlighted
 * (highlight.ts), outputs as a frontend shows them (html-outputs.ts), vega-lite charts live through vega-embed
 * with vega, vega-lite and vega-embed inlined from the installed packages (the page works offline), each
 * chart's PNG shown where JavaScript is off.
 */
import { escapeHtml } from "../runtime/display.js";
import { cellSource, notebookName, type Cell, type Notebook } from "../notebook/nbformat.js";
import { highlightTs } from "./highlight.js";
import { ChartList, renderMarkdown, renderOutput } from "./html-outputs.js";
import { vegaScripts } from "./vega-assets.js";

const STYLE = `
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1f2328; background: #fff; }
main { max-width: 980px; margin: 0 auto; padding: 24px 16px 48px; }
.cell { margin: 14px 0; }
.input { display: flex; gap: 8px; }
.prompt { flex: 0 0 3.5em; text-align: right; color: #6e7781; font: 13px/1.9 ui-monospace, "DejaVu Sans Mono", monospace; }
.outputs { margin-left: calc(3.5em + 8px); }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font: 13.5px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
pre.code { flex: 1; min-width: 0; padding: 8px 10px; background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; }
.output { margin: 6px 0; overflow-x: auto; }
pre.stderr { background: #fff5e6; padding: 4px 8px; }
pre.error { background: #ffebe9; color: #82071e; padding: 6px 8px; border-left: 3px solid #cf222e; }
.output table { border-collapse: collapse; font-size: 14px; }
.output th, .output td { padding: 3px 10px; border-bottom: 1px solid #d0d7de; text-align: right; }
.output img { max-width: 100%; }
.markdown code { background: #f6f8fa; padding: 0 3px; border-radius: 4px; }
.k { color: #cf222e; } .s { color: #0a3069; } .n { color: #0550ae; } .c { color: #6e7781; font-style: italic; }
.t { color: #953800; } .p { color: #8250df; }
footer { margin-top: 32px; color: #6e7781; font-size: 13px; }
`;

/**
 * Draws every chart container's spec with vega-embed; the PNG goes once the view is there. Errors only, as the
 * kernel renders its PNGs: the charts are vega-lite v5 specs, and vega-lite 6 warns about that for each one.
 */
const EMBED = `
(function () {
  var specs = JSON.parse(document.getElementById("loralab-charts").textContent);
  document.querySelectorAll("[data-chart]").forEach(function (container) {
    var index = Number(container.getAttribute("data-chart"));
    var view = document.createElement("div");
    container.appendChild(view);
    vegaEmbed(view, specs[index], { actions: false, logLevel: vega.Error }).then(
      function () {
        var png = container.querySelector("img.fallback");
        if (png) png.remove();
      },
      function (error) {
        view.remove();
        console.error("chart " + (index + 1) + " could not be drawn: " + error);
      }
    );
  });
})();
`;

/** JSON that can sit inside a <script> element (no "</script>", no "<!--"). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/** The first heading of the first markdown cell, as plain text. */
function titleOf(notebook: Notebook): string | undefined {
  for (const cell of notebook.cells) {
    if (cell.cell_type !== "markdown") continue;
    const heading = /^#{1,6}\s+(.+)$/m.exec(cellSource(cell));
    if (heading) return heading[1]!.replace(/[*_`]/g, "").trim();
  }
  return undefined;
}

function renderCell(cell: Cell, charts: ChartList): string {
  const source = cellSource(cell);
  if (cell.cell_type === "markdown") return `<section class="cell markdown">${renderMarkdown(source)}</section>`;
  if (cell.cell_type === "raw") return `<section class="cell raw"><pre>${escapeHtml(source)}</pre></section>`;
  const prompt = `<div class="prompt">[${cell.execution_count ?? " "}]:</div>`;
  const input = source.trim() ? `<div class="input">${prompt}<pre class="code"><code>${highlightTs(source)}</code></pre></div>` : "";
  const outputs = cell.outputs.map((o) => renderOutput(o, charts)).filter(Boolean);
  const out = outputs.length > 0 ? `\n<div class="outputs">\n${outputs.join("\n")}\n</div>` : "";
  return input || out ? `<section class="cell code">${input}${out}</section>` : "";
}

/** The page's HTML; `file` (the notebook's path) names it in the title and footer. */
export function notebookToHtml(notebook: Notebook, file: string): string {
  const charts = new ChartList();
  const body = notebook.cells
    .map((c) => renderCell(c, charts))
    .filter(Boolean)
    .join("\n");
  const scripts =
    charts.specs.length === 0
      ? []
      : [
          `<script type="application/json" id="loralab-charts">${scriptJson(charts.specs)}</script>`,
          ...vegaScripts().map((s) => `<script>/* ${s.name} ${s.version} */\n${s.code}\n</script>`),
          `<script>${EMBED}</script>`,
        ];
  const title = titleOf(notebook) ?? notebookName(file);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
<footer>Exported from ${escapeHtml(notebookName(file))}.ipynb by <code>loralab export --to html</code>.</footer>
</main>
${scripts.join("\n")}
</body>
</html>
`;
}
