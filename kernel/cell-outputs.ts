/**
 * What a frontend stores from a cell's iopub messages, as nbclient does: consecutive writes to one stream joined
 * into one output, display_data and execute_result with their data and metadata (execute_result with its
 * execution_count; the transient display_id is not stored), update_display_data applied to every stored output
 * of that display id (in any cell run so far), clear_output (with `wait`: at the next output), errors with their
 * traceback. `loralab run` (run-notebook.ts) fills a notebook's code cells with it.
 */
import type { Output } from "../src/notebook/nbformat.js";
import type { Message } from "./protocol/wire.js";

type DisplayOutput = Extract<Output, { output_type: "display_data" | "execute_result" }>;

export class OutputCollector {
  /** Stored outputs by display id, across cells: an update may come from a later cell. */
  private readonly displays = new Map<string, DisplayOutput[]>();
  private outputs: Output[] = [];
  private clearPending = false;

  /** Starts a cell: its outputs go into `outputs` (the cell's own array). */
  begin(outputs: Output[]): void {
    this.outputs = outputs;
    this.clearPending = false;
  }

  /** Applies one iopub message of the running cell; returns whether it changed the stored outputs. */
  apply(m: Message): boolean {
    const c = m.content;
    switch (m.header.msg_type) {
      case "stream": {
        const name = c.name === "stderr" ? "stderr" : "stdout";
        const text = String(c.text ?? "");
        this.clearIfPending();
        const last = this.outputs.at(-1);
        if (last?.output_type === "stream" && last.name === name) last.text = `${joined(last.text)}${text}`;
        else this.outputs.push({ output_type: "stream", name, text });
        return true;
      }
      case "display_data":
      case "execute_result": {
        this.clearIfPending();
        const data = (c.data ?? {}) as Record<string, unknown>;
        const metadata = (c.metadata ?? {}) as Record<string, unknown>;
        const output: DisplayOutput =
          m.header.msg_type === "execute_result"
            ? {
                output_type: "execute_result",
                data,
                metadata,
                execution_count: typeof c.execution_count === "number" ? c.execution_count : null,
              }
            : { output_type: "display_data", data, metadata };
        this.outputs.push(output);
        const id = displayId(c);
        if (id !== undefined) this.displays.set(id, [...(this.displays.get(id) ?? []), output]);
        return true;
      }
      case "update_display_data": {
        const id = displayId(c);
        const targets = id === undefined ? [] : (this.displays.get(id) ?? []);
        for (const t of targets) {
          t.data = (c.data ?? {}) as Record<string, unknown>;
          t.metadata = (c.metadata ?? {}) as Record<string, unknown>;
        }
        return targets.length > 0;
      }
      case "clear_output":
        if (c.wait === true) this.clearPending = true;
        else this.clear();
        return true;
      case "error":
        this.clearIfPending();
        this.outputs.push({
          output_type: "error",
          ename: String(c.ename ?? "Error"),
          evalue: String(c.evalue ?? ""),
          traceback: Array.isArray(c.traceback) ? c.traceback.map(String) : [],
        });
        return true;
      default:
        return false;
    }
  }

  private clearIfPending(): void {
    if (!this.clearPending) return;
    this.clearPending = false;
    this.clear();
  }

  /** Empties the running cell's outputs (its displays can no longer be updated there). */
  private clear(): void {
    const gone = new Set<Output>(this.outputs);
    for (const [id, list] of this.displays)
      this.displays.set(
        id,
        list.filter((o) => !gone.has(o)),
      );
    this.outputs.splice(0);
  }
}

function displayId(content: Record<string, unknown>): string | undefined {
  const transient = content.transient as { display_id?: unknown } | undefined;
  return typeof transient?.display_id === "string" ? transient.display_id : undefined;
}

const joined = (t: string | string[]) => (Array.isArray(t) ? t.join("") : t);
