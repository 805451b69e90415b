/**
 * `loralab run`'s engine: executes a notebook's code cells in order through the kernel's own request handler
 * (handler.ts, its executor process, the interrupt path) over an in-memory transport — no zeromq, no Jupyter —
 * and stores what the kernel sends as the cells' outputs (cell-outputs.ts). One progress line per cell on
 * stderr. The first failing cell ends the run (as nbconvert): the cells after it are not run. A per-cell
 * timeout and Ctrl-C interrupt the running cell through the kernel's interrupt path. The notebook is written
 * (atomically) after every cell, so a stopped run leaves the partial notebook.
 */
import { randomUUID } from "node:crypto";
import { cellSource, writeNotebook, type CodeCell, type Notebook } from "../src/notebook/nbformat.js";
import { OutputCollector } from "./cell-outputs.js";
import { KernelHandler } from "./handler.js";
import type { InChannel, OutChannel, Transport } from "./protocol/transport.js";
import { newHeader, type Content, type Message } from "./protocol/wire.js";

export interface RunNotebookOptions {
  /** The notebook to run (parameters already injected); its code cells are filled in place. */
  notebook: Notebook;
  /** Where the executed notebook goes. */
  output: string;
  /** Per-cell timeout in seconds. */
  timeoutS?: number;
  /** The executor's working directory (the notebook's folder). */
  cwd: string;
  /** Progress and errors (default: stderr). */
  write?: (text: string) => void;
}

export const EXIT_CELL_FAILED = 1;
export const EXIT_INTERRUPTED = 130;

/** Hands requests to the handler and the messages it sends to whoever waits for them. */
class RunTransport implements Transport {
  private readonly listeners = new Set<(channel: OutChannel, m: Message) => void>();

  send(channel: OutChannel, message: Message): void {
    for (const l of this.listeners) l(channel, message);
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  listen(l: (channel: OutChannel, m: Message) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

const session = randomUUID();

function request(msgType: string, content: Content): Message {
  return { identities: [], header: newHeader(msgType, session), parent_header: {}, metadata: {}, content, buffers: [] };
}

const parentOf = (m: Message) => (m.parent_header as { msg_id?: string }).msg_id;

/** The first line of a cell worth quoting in a message. */
export function firstLine(source: string): string {
  const line = source.split("\n").find((l) => l.trim() !== "") ?? "";
  const t = line.trim();
  return t.length > 60 ? `${t.slice(0, 59)}…` : t;
}

const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, "");

interface CellResult {
  reply: Content;
  busyAt?: string;
  inputAt?: string;
  replyAt?: string;
  idleAt?: string;
}

export async function runNotebook(o: RunNotebookOptions): Promise<number> {
  const write = o.write ?? ((t: string) => void process.stderr.write(t));
  const tty = o.write === undefined && process.stderr.isTTY === true;
  const paint = (s: string) => (tty ? s : stripAnsi(s));
  const transport = new RunTransport();
  const handler = new KernelHandler(transport, { cwd: o.cwd, log: (t) => write(`[loralab kernel] ${t}\n`) });
  const collector = new OutputCollector();
  const nb = o.notebook;

  let stop: "interrupt" | undefined;
  let abort!: () => void;
  const aborted = new Promise<"abort">((resolve) => (abort = () => resolve("abort")));
  const onSigint = () => {
    if (stop === "interrupt") return abort(); // a second Ctrl-C: do not wait for the cell
    stop = "interrupt";
    write(`\nloralab run: interrupted; stopping the running cell at its next step boundary (Ctrl-C again to stop at once)\n`);
    handler.interrupt();
  };
  process.on("SIGINT", onSigint);

  /** Sends a shell request; resolves with its reply once the kernel is idle again. */
  const shell = (msgType: string, content: Content, onIopub?: (m: Message) => void): Promise<CellResult> => {
    const m = request(msgType, content);
    const id = m.header.msg_id;
    return new Promise((resolve) => {
      const result: Partial<CellResult> = {};
      const done = () => {
        if (result.reply && result.idleAt) (off(), resolve(result as CellResult));
      };
      const off = transport.listen((channel, msg) => {
        if (parentOf(msg) !== id) return;
        const type = msg.header.msg_type;
        if (channel === "shell") {
          result.reply = msg.content;
          result.replyAt = msg.header.date;
        } else if (channel === "iopub" && type === "status") {
          if (msg.content.execution_state === "busy") result.busyAt = msg.header.date;
          if (msg.content.execution_state === "idle") result.idleAt = msg.header.date;
        } else if (channel === "iopub") {
          if (type === "execute_input") result.inputAt = msg.header.date;
          onIopub?.(msg);
        }
        done();
      });
      handler.receive("shell" as InChannel, m);
    });
  };

  const save = async () => {
    await writeNotebook(o.output, nb);
  };

  const finish = async (code: number) => {
    process.off("SIGINT", onSigint);
    await save();
    await Promise.race([handler.close(), new Promise((r) => setTimeout(r, 3000).unref())]);
    return code;
  };

  const info = await shell("kernel_info_request", {});
  if (info.reply.language_info) nb.metadata = { ...nb.metadata, language_info: info.reply.language_info };

  const code = nb.cells.map((c, i) => [c, i] as const).filter(([c]) => c.cell_type === "code") as [CodeCell, number][];
  for (const [cell] of code) {
    cell.outputs = [];
    cell.execution_count = null;
  }
  await save();

  for (const [k, [cell, index]] of code.entries()) {
    if (stop) return stopped(`before cell ${index + 1}`);
    const source = cellSource(cell);
    const label = `[${k + 1}/${code.length}] cell ${index + 1}`;
    if (source.trim() === "") {
      write(`${label} (empty)\n`);
      continue;
    }
    if (tty) write(`${label} …`);
    collector.begin(cell.outputs);
    const started = performance.now();
    let timedOut = false;
    const timer =
      o.timeoutS === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            handler.interrupt();
          }, o.timeoutS * 1000);
    const run = shell(
      "execute_request",
      { code: source, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true },
      (m) => {
        if (m.header.msg_type === "execute_input" && typeof m.content.execution_count === "number")
          cell.execution_count = m.content.execution_count;
        collector.apply(m);
      },
    );
    const r = await Promise.race([run, aborted]);
    clearTimeout(timer);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (r === "abort") {
      write(`${tty ? "\r" : ""}${label} ✗ ${seconds} s (stopped)\n`);
      return stopped(`in cell ${index + 1}`);
    }
    const { reply } = r;
    if (typeof reply.execution_count === "number") cell.execution_count = reply.execution_count;
    cell.metadata = {
      ...cell.metadata,
      execution: {
        "iopub.status.busy": r.busyAt,
        "iopub.execute_input": r.inputAt ?? r.busyAt,
        "shell.execute_reply": r.replyAt,
        "iopub.status.idle": r.idleAt,
      },
    };
    const ok = reply.status === "ok";
    write(`${tty ? "\r" : ""}${label} ${ok ? "✓" : "✗"} ${seconds} s\n`);
    await save();
    if (ok) continue;
    if (stop) return stopped(`in cell ${index + 1}`);
    const what = `cell ${index + 1} (${JSON.stringify(firstLine(source))})`;
    if (timedOut) {
      write(`loralab run: ${what} timed out after ${o.timeoutS} s and was interrupted; the cells after it were not run\n`);
    } else {
      const traceback = Array.isArray(reply.traceback) ? (reply.traceback as string[]) : [];
      if (traceback.length) write(`${paint(traceback.join("\n"))}\n`);
      write(`loralab run: ${what} failed: ${reply.ename}: ${reply.evalue}\n`);
    }
    write(`loralab run: wrote the partial notebook ${o.output}\n`);
    return finish(EXIT_CELL_FAILED);
  }
  return finish(0);

  async function stopped(where: string): Promise<number> {
    write(`loralab run: stopped by Ctrl-C ${where}; the cells after it were not run\n`);
    write(`loralab run: wrote the partial notebook ${o.output}\n`);
    return finish(EXIT_INTERRUPTED);
  }
}
