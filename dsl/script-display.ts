/**
 * `display(x)` for code that runs both in a loralab kernel cell and as a plain script (what
 * `loralab export --to ts` writes). In the kernel it shows through the kernel's own display (rich output,
 * charts with their PNG); elsewhere text goes to stdout and images to files beside the script: a vega-lite
 * chart as `<script>-<n>.png`, PNG/JPEG/SVG data as they are. Values show as the kernel shows them: their
 * [Symbol.for("Jupyter.display")]() bundle, an arquero table as markdown, a vega-lite spec as a chart,
 * anything else through util.inspect. In a script `undefined` shows nothing, as a cell whose last expression is
 * undefined shows nothing (an exported cell's result is `display(expr)`).
 */
import { randomBytes } from "node:crypto";
import * as path from "node:path";
import * as util from "node:util";
import { DISPLAY, hasDisplay, type MimeBundle, VEGALITE_MIME } from "../src/runtime/display.js";
import { inKernel, kernelDisplay } from "../src/runtime/kernel.js";
import { chartToPng } from "../src/charts/render.js";
import { writeFileAtomic } from "../src/core/files.js";

export interface DisplayHandle {
  readonly displayId: string;
  /** Replaces the output in the kernel; in a script, shows the new value. */
  update(value: unknown): DisplayHandle;
}

export type Display = ((value: unknown) => DisplayHandle) & {
  html(html: string): DisplayHandle;
  markdown(markdown: string): DisplayHandle;
  svg(svg: string): DisplayHandle;
  png(data: Uint8Array | string): DisplayHandle;
  jpeg(data: Uint8Array | string): DisplayHandle;
  json(value: unknown): DisplayHandle;
  vegalite(spec: object): DisplayHandle;
  latex(latex: string): DisplayHandle;
  text(text: string): DisplayHandle;
  mimebundle(bundle: MimeBundle): DisplayHandle;
};

/** Same options as the kernel's text/plain, so that a script prints what the notebook shows. */
function inspect(value: unknown): string {
  return util.inspect(value, { depth: 4, colors: false, maxArrayLength: 100, maxStringLength: 10_000, breakLength: 100 });
}

interface TableLike {
  numRows(): number;
  toMarkdown(options?: { limit?: number }): string;
}
const TABLE_ROWS = 100;

function bundleOf(value: unknown): MimeBundle | Promise<MimeBundle> {
  if (hasDisplay(value)) return value[DISPLAY]();
  const t = value as Partial<TableLike> | null;
  if (typeof t === "object" && t !== null && typeof t.toMarkdown === "function" && typeof t.numRows === "function") {
    const more = t.numRows() > TABLE_ROWS ? ` (${TABLE_ROWS} of ${t.numRows()} rows shown)` : "";
    return { "text/plain": t.toMarkdown({ limit: TABLE_ROWS }) + more };
  }
  const schema = (value as { $schema?: unknown } | null)?.$schema;
  if (typeof schema === "string" && schema.includes("vega-lite")) return { [VEGALITE_MIME]: value, "text/plain": "[Vega-Lite chart]" };
  return { "text/plain": inspect(value) };
}

let images = 0;

/** `<dir>/<script name>-<n><ext>`, beside the running script (the working directory if there is none). */
function imagePath(ext: string): string {
  const script = process.argv[1];
  const base = script ? path.join(path.dirname(script), path.basename(script).replace(/\.[cm]?[jt]s$/, "")) : path.resolve("display");
  return `${base}-${++images}${ext}`;
}

function saveImage(ext: string, data: () => Promise<Uint8Array | string>): string {
  const file = imagePath(ext);
  data()
    .then((bytes) => writeFileAtomic(file, bytes))
    .catch((e: unknown) => {
      console.error(`display: could not write ${file}: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    });
  return path.relative(process.cwd(), file) || file;
}

const bytesOf = (data: unknown) => (data instanceof Uint8Array ? data : Buffer.from(String(data), "base64"));

/** Prints a bundle's text and writes its images (their names follow the text). */
function printBundle(bundle: MimeBundle): void {
  const text = (mime: string) => (typeof bundle[mime] === "string" ? (bundle[mime] as string) : undefined);
  const files: string[] = [];
  const spec = bundle[VEGALITE_MIME];
  if (spec !== null && typeof spec === "object") files.push(saveImage(".png", () => chartToPng(spec)));
  else if (bundle["image/png"] !== undefined) files.push(saveImage(".png", async () => bytesOf(bundle["image/png"])));
  if (bundle["image/jpeg"] !== undefined) files.push(saveImage(".jpg", async () => bytesOf(bundle["image/jpeg"])));
  if (text("image/svg+xml") !== undefined) files.push(saveImage(".svg", async () => text("image/svg+xml")!));
  const json = bundle["application/json"];
  const shown =
    text("text/plain") ??
    text("text/markdown") ??
    text("text/html") ??
    text("text/latex") ??
    (json !== undefined ? inspect(json) : undefined);
  if (shown !== undefined) console.log(shown);
  for (const f of files) console.log(`[image: ${f}]`);
}

function print(bundle: MimeBundle | Promise<MimeBundle>): void {
  if (!(bundle instanceof Promise)) return printBundle(bundle);
  bundle.then(printBundle, (e: unknown) => {
    console.error(`display failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}

/** Shows `value`: in the kernel's output, else on stdout (and images in files beside the script). */
function showValue(value: unknown): DisplayHandle {
  if (inKernel()) return kernelDisplay(value)!;
  if (value !== undefined) print(bundleOf(value));
  const handle: DisplayHandle = { displayId: randomBytes(8).toString("hex"), update: (next) => (showValue(next), handle) };
  return handle;
}

/** A value whose display is exactly `bundle`. */
const raw = (bundle: MimeBundle) => showValue({ [DISPLAY]: () => bundle });

export const display: Display = Object.assign(showValue, {
  html: (html: string) => raw({ "text/html": html, "text/plain": html }),
  markdown: (markdown: string) => raw({ "text/markdown": markdown, "text/plain": markdown }),
  svg: (svg: string) => raw({ "image/svg+xml": svg, "text/plain": "[SVG image]" }),
  png: (data: Uint8Array | string) => raw({ "image/png": data, "text/plain": "[PNG image]" }),
  jpeg: (data: Uint8Array | string) => raw({ "image/jpeg": data, "text/plain": "[JPEG image]" }),
  json: (value: unknown) => raw({ "application/json": value, "text/plain": inspect(value) }),
  vegalite: (spec: object) => raw({ [VEGALITE_MIME]: spec, "text/plain": "[Vega-Lite chart]" }),
  latex: (latex: string) => raw({ "text/latex": latex, "text/plain": latex }),
  text: (text: string) => raw({ "text/plain": text }),
  mimebundle: (bundle: MimeBundle) => raw(bundle),
});
