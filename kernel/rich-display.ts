/**
 * Rich display in cells.
 *
 * Any object with a [Symbol.for("Jupyter.display")]() method returning a mimebundle (Deno's convention; the
 * method may also return a Promise of one) is shown with that bundle, as a cell's last expression or through
 * display(x). Everything else is shown as text/plain, rendered by util.inspect.
 *
 * The cell globals built here (cell-globals.ts declares their types for the checker):
 *   display(x, { displayId?, metadata? })  → a handle whose update(y) replaces that output in place
 *   display.html / markdown / svg / png / jpeg / json / vegalite / latex / text / mimebundle
 *   clearOutput(wait = false)
 */
import { randomBytes } from "node:crypto";
import * as util from "node:util";
import { DISPLAY, hasDisplay, type MimeBundle, VEGALITE_MIME } from "../src/runtime/display.js";

const BINARY = /^(image\/(png|jpeg|gif|webp|bmp)|application\/pdf)$/;
const JSON_MIME = /^application\/(.+\+)?json$/;

export function plainText(value: unknown): string {
  return util.inspect(value, { depth: 4, colors: false, maxArrayLength: 100, maxStringLength: 10_000, breakLength: 100 });
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Makes a bundle JSON-safe: bytes → base64, JSON types kept as values, everything else text. */
export function normalizeBundle(bundle: MimeBundle, value?: unknown): MimeBundle {
  const out: MimeBundle = {};
  for (const [mime, data] of Object.entries(bundle)) {
    if (data === undefined || data === null) continue;
    if (!/^[\w\-+.]+\/[\w\-+.]+$/.test(mime)) continue;
    if (data instanceof Uint8Array) out[mime] = base64(data);
    else if (JSON_MIME.test(mime)) out[mime] = typeof data === "string" && mime === "application/json" ? safeJsonParse(data) : data;
    else if (typeof data === "string") out[mime] = data;
    else out[mime] = BINARY.test(mime) ? String(data) : typeof data === "object" ? JSON.stringify(data) : String(data);
  }
  if (!("text/plain" in out)) out["text/plain"] = value === undefined ? "" : richFallback(value, Object.keys(out));
  return out;
}

/** text/plain for a value that brought only rich types: its class and what it offers. */
function richFallback(value: unknown, mimes: string[]): string {
  if (typeof value !== "object" || value === null || !hasDisplay(value)) return plainText(value);
  const name = (value as object).constructor?.name || "Object";
  return `[${name}: ${mimes.join(", ") || "no output"}]`;
}

function safeJsonParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/**
 * A vega-lite chart also gets an image/png rendering (made in-process, no browser), so it shows
 * wherever vega-lite is not rendered: GitHub, nbviewer, classic Notebook, VS Code without the extension.
 */
export function withPngFallback(bundle: MimeBundle): MimeBundle | Promise<MimeBundle> {
  const spec = bundle[VEGALITE_MIME];
  if (spec === null || typeof spec !== "object" || "image/png" in bundle) return bundle;
  return import("../src/charts/render.js")
    .then(({ chartToPng }) => chartToPng(spec))
    .then(
      (png) => ({ ...bundle, "image/png": base64(png) }),
      () => bundle,
    ); // an unrenderable spec keeps its vega-lite output
}

/**
 * A bundle that carries both text/html and a vega-lite chart, as two bundles: the HTML with its text, and the
 * chart with its PNG. A frontend shows one MIME type per output, and classic Notebook, nbconvert's HTML and
 * JupyterLab all rank HTML above a chart, so in one output the chart would never show.
 */
export function splitChart(bundle: MimeBundle): [MimeBundle] | [MimeBundle, MimeBundle] {
  if (!("text/html" in bundle) || !(VEGALITE_MIME in bundle)) return [bundle];
  const { [VEGALITE_MIME]: spec, "image/png": png, ...table } = bundle;
  return [table, { [VEGALITE_MIME]: spec, ...(png === undefined ? {} : { "image/png": png }), "text/plain": "[Vega-Lite chart]" }];
}

/** An arquero table (duck-typed: the kernel does not load arquero itself). */
interface TableLike {
  numRows(): number;
  toHTML(options?: { limit?: number }): string;
  toMarkdown(options?: { limit?: number }): string;
}

function isTable(value: unknown): value is TableLike {
  const t = value as Partial<TableLike> | null;
  return (
    typeof t === "object" &&
    t !== null &&
    typeof t.numRows === "function" &&
    typeof t.toHTML === "function" &&
    typeof t.toMarkdown === "function"
  );
}

/** A vega-lite spec written as a plain object (its $schema says so). */
function isVegaLiteSpec(value: unknown): value is { $schema: string } {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { $schema?: unknown }).$schema === "string" &&
    /vega-lite/.test((value as { $schema: string }).$schema)
  );
}

/** Rows shown of a table; the text says how many were left out. */
const TABLE_ROWS = 100;

function tableBundle(table: TableLike): MimeBundle {
  const more = table.numRows() > TABLE_ROWS ? ` (${TABLE_ROWS} of ${table.numRows()} rows shown)` : "";
  return {
    "text/html": table.toHTML({ limit: TABLE_ROWS }) + (more ? `<p>${more.trim()}</p>` : ""),
    "text/plain": table.toMarkdown({ limit: TABLE_ROWS }) + more,
  };
}

/**
 * The mimebundle that shows `value`: its Jupyter.display bundle when it has one; an arquero table as an
 * HTML table with a text version; a vega-lite spec as a chart (with its PNG); else text/plain.
 */
export function toBundle(value: unknown): MimeBundle | Promise<MimeBundle> {
  if (isTable(value) && !hasDisplay(value)) return tableBundle(value);
  if (isVegaLiteSpec(value)) return withPngFallback({ [VEGALITE_MIME]: value, "text/plain": "[Vega-Lite chart]" });
  if (!hasDisplay(value)) return { "text/plain": plainText(value) };
  const bundle = value[DISPLAY]();
  const finish = (b: unknown): MimeBundle | Promise<MimeBundle> =>
    b !== null && typeof b === "object"
      ? withPngFallback(normalizeBundle(b as MimeBundle, value))
      : { "text/plain": plainText(b ?? value) };
  return bundle instanceof Promise ? bundle.then(finish) : finish(bundle);
}

export interface DisplayOptions {
  /** Reuse (update) the output with this id; new outputs get a fresh id. */
  displayId?: string;
  metadata?: Record<string, unknown>;
}

/** Marks values that are not worth an execute_result (display()'s handle, as a cell's last expression). */
export const NO_RESULT = Symbol.for("loralab.kernel.noResult");

export interface DisplayHandle {
  readonly displayId: string;
  /** Replaces the output shown by this handle. */
  update(value: unknown): DisplayHandle;
}

export type DisplayEmit = (
  event:
    | { kind: "display"; update: boolean; data: MimeBundle; metadata: Record<string, unknown>; displayId: string }
    | { kind: "clear"; wait: boolean },
) => void;

export type DisplayFn = ((value: unknown, options?: DisplayOptions) => DisplayHandle) & {
  html(html: string, options?: DisplayOptions): DisplayHandle;
  markdown(markdown: string, options?: DisplayOptions): DisplayHandle;
  svg(svg: string, options?: DisplayOptions): DisplayHandle;
  png(data: Uint8Array | string, options?: DisplayOptions): DisplayHandle;
  jpeg(data: Uint8Array | string, options?: DisplayOptions): DisplayHandle;
  json(value: unknown, options?: DisplayOptions): DisplayHandle;
  vegalite(spec: object, options?: DisplayOptions): DisplayHandle;
  latex(latex: string, options?: DisplayOptions): DisplayHandle;
  text(text: string, options?: DisplayOptions): DisplayHandle;
  mimebundle(bundle: MimeBundle, options?: DisplayOptions): DisplayHandle;
};

export function newDisplayId(): string {
  return randomBytes(8).toString("hex");
}

/**
 * The display() and clearOutput() globals, sending through `emit`; errors of async bundles go to `onError`,
 * and `track` receives each async bundle's promise (the cell waits for them before it reports done).
 */
export function createDisplayApi(
  emit: DisplayEmit,
  onError: (e: unknown) => void,
  track: (p: Promise<unknown>) => void = () => {},
): { display: DisplayFn; clearOutput: (wait?: boolean) => void } {
  /** Display ids whose chart is shown as a second output (displayId-chart). */
  const charted = new Set<string>();
  const send = (bundle: MimeBundle | Promise<MimeBundle>, displayId: string, update: boolean, metadata: Record<string, unknown>) => {
    const go = (data: MimeBundle) => {
      const [main, chart] = splitChart(data);
      emit({ kind: "display", update, data: main, metadata, displayId });
      const chartId = `${displayId}-chart`;
      if (chart) emit({ kind: "display", update: update && charted.has(displayId), data: chart, metadata, displayId: chartId });
      else if (update && charted.has(displayId))
        emit({ kind: "display", update, data: { "text/plain": "" }, metadata, displayId: chartId });
      if (chart) charted.add(displayId);
    };
    if (bundle instanceof Promise) track(bundle.then(go, onError));
    else go(bundle);
  };
  const show = (bundle: () => MimeBundle | Promise<MimeBundle>, options: DisplayOptions = {}): DisplayHandle => {
    const displayId = options.displayId ?? newDisplayId();
    const metadata = options.metadata ?? {};
    send(bundle(), displayId, false, metadata);
    return handle(displayId, metadata);
  };
  const handle = (displayId: string, metadata: Record<string, unknown>): DisplayHandle => {
    const h: DisplayHandle = {
      displayId,
      update(value: unknown) {
        send(toBundle(value), displayId, true, metadata);
        return h;
      },
    };
    Object.defineProperty(h, NO_RESULT, { value: true });
    return h;
  };
  const raw = (mime: string, data: unknown, text?: string) => (options?: DisplayOptions) =>
    show(() => withPngFallback(normalizeBundle({ [mime]: data, ...(text === undefined ? {} : { "text/plain": text }) }, data)), options);
  const display = ((value: unknown, options?: DisplayOptions) => show(() => toBundle(value), options)) as DisplayFn;
  display.html = (s, o) => raw("text/html", s, "[HTML]")(o);
  display.markdown = (s, o) => raw("text/markdown", s, s)(o);
  display.svg = (s, o) => raw("image/svg+xml", s, "[SVG image]")(o);
  display.png = (b, o) => raw("image/png", b, "[PNG image]")(o);
  display.jpeg = (b, o) => raw("image/jpeg", b, "[JPEG image]")(o);
  display.json = (v, o) => raw("application/json", v, plainText(v))(o);
  display.vegalite = (spec, o) => raw(VEGALITE_MIME, spec, "[Vega-Lite chart]")(o);
  display.latex = (s, o) => raw("text/latex", s, s)(o);
  display.text = (s, o) => raw("text/plain", s)(o);
  display.mimebundle = (bundle, o) => show(() => withPngFallback(normalizeBundle(bundle)), o);
  const clearOutput = (wait = false) => emit({ kind: "clear", wait });
  return { display, clearOutput };
}
