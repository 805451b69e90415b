/**
 * The rich-display protocol shared by library objects and the kernel (Deno's convention): an object with a
 * [Symbol.for("Jupyter.display")]() method returns a mimebundle (or a Promise of one), which the loralab kernel
 * shows; plain Node prints text/plain through util.inspect.
 */
export const DISPLAY = Symbol.for("Jupyter.display");

/** MIME type → data: strings, JSON values (for +json types) or bytes (images). */
export type MimeBundle = Record<string, unknown>;

export interface Displayable {
  [DISPLAY](): MimeBundle | Promise<MimeBundle>;
}

/** The vega-lite version every chart is written for. */
export const VEGALITE_MIME = "application/vnd.vegalite.v5+json";

export function hasDisplay(value: unknown): value is Displayable {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as Record<symbol, unknown>)[DISPLAY] === "function"
  );
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
