/**
 * Everything a cell shows becomes an IPC message tagged with the cell it belongs to: process.stdout/stderr
 * writes, display() and clearOutput(), and tslab's own display API (import { display } from "tslab").
 */
import { createRequire } from "node:module";
import { createDisplayApi, normalizeBundle, type DisplayFn } from "../rich-display.js";
import type { MimeBundle } from "../../src/runtime/display.js";
import type { FromExecutor } from "./messages.js";

const require = createRequire(import.meta.url);

export function captureOutput(
  send: (m: FromExecutor) => void,
  cell: () => number,
  track: (p: Promise<unknown>) => void,
): { display: DisplayFn; clearOutput: (wait?: boolean) => void } {
  const writer = (name: "stdout" | "stderr") =>
    function write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
      const text =
        typeof chunk === "string"
          ? chunk
          : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
      if (text.length > 0) send({ type: "stream", cell: cell(), name, text });
      const cb = typeof encoding === "function" ? encoding : callback;
      if (typeof cb === "function") process.nextTick(cb as () => void);
      return true;
    };
  process.stdout.write = writer("stdout") as typeof process.stdout.write;
  process.stderr.write = writer("stderr") as typeof process.stderr.write;

  const display = (content: { data: MimeBundle; metadata: Record<string, unknown>; transient: { display_id?: string } }, update: boolean) =>
    send({ type: "display", cell: cell(), update, content });

  // tslab's own display API writes through this hook.
  const tslabJupyter = require("tslab/dist/jupyter.js") as { lastWriteDisplayData: unknown };
  tslabJupyter.lastWriteDisplayData = (
    content: { data: MimeBundle; metadata?: Record<string, unknown>; transient?: { display_id?: string } },
    update: boolean,
  ) => display({ data: normalizeBundle(content.data), metadata: content.metadata ?? {}, transient: content.transient ?? {} }, update);

  return createDisplayApi(
    (event) => {
      if (event.kind === "clear") send({ type: "clear_output", cell: cell(), wait: event.wait });
      else display({ data: event.data, metadata: event.metadata, transient: { display_id: event.displayId } }, event.update);
    },
    (e) => console.error("display failed:", e),
    track,
  );
}
