/**
 * execute_request, from the request to its reply: execution counts and history, the `expr?` pager, the cell's
 * output routed to the request that ran it (late output of async code included), input() through the
 * frontend's stdin, interrupts (with a last-resort executor restart), user_expressions, and a new executor
 * when the old one died or its tensor backend failed.
 */
import { ExecutorDied, type ExecuteOutcome, type ExecutorClient, type InputRequest, type OutputMessage } from "./executor/client.js";
import type { ExpressionResult } from "./executor/messages.js";
import { History } from "./history.js";
import type { Messenger } from "./messenger.js";
import type { Message } from "./protocol/wire.js";

const RED = "\u001b[0;31m";
const RESET = "\u001b[0m";

interface CellParent {
  msg: Message;
  silent: boolean;
  executionCount: number;
}

export class Execution {
  readonly history = new History();
  private executionCount = 0;
  /** The requests of recent executor cells, by cell id: output may arrive after its cell ended. */
  private readonly cells = new Map<number, CellParent>();
  private running: { cell: number; interruptedAt?: number; fallback?: NodeJS.Timeout } | undefined;
  private awaitingInput: { id: number; request: string } | undefined;

  constructor(
    private readonly messenger: Messenger,
    private readonly executor: ExecutorClient,
    private readonly graceMs: number,
    private readonly log: (text: string) => void,
  ) {}

  get count(): number {
    return this.executionCount;
  }

  /** Runs one execute_request; true when it failed and asks to stop the cells queued behind it. */
  async execute(m: Message): Promise<boolean> {
    const c = m.content;
    const code = typeof c.code === "string" ? c.code : "";
    const silent = c.silent === true;
    const storeHistory = !silent && c.store_history !== false;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.messenger.publish(m, "execute_input", { code, execution_count: count });
    if (storeHistory) this.history.add(count, code);

    const pager = /^\s*([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*\?\??\s*$/.exec(code);
    if (pager) return this.page(m, pager[1]!, count);

    const outcome = await this.run(m, code, count, silent);
    if (outcome.backendFailed) {
      this.log("the tensor backend failed; starting a new executor");
      this.executor.restart();
    }
    const error = outcome.error;
    if (error) {
      if (!silent) this.messenger.publish(m, "error", { ...error });
      this.messenger.reply("shell", m, { status: "error", execution_count: count, ...error });
      return c.stop_on_error !== false;
    }
    const userExpressions = await this.evaluate(c.user_expressions, count);
    this.messenger.reply("shell", m, { status: "ok", execution_count: count, payload: [], user_expressions: userExpressions });
    return false;
  }

  private async run(m: Message, code: string, count: number, silent: boolean): Promise<ExecuteOutcome> {
    try {
      return await this.executor.execute(code, count, (cell) => {
        this.cells.set(cell, { msg: m, silent, executionCount: count });
        this.running = { cell };
        for (const old of this.cells.keys()) if (old < cell - 16) this.cells.delete(old);
      });
    } catch (e) {
      if (!(e instanceof ExecutorDied)) throw e;
      const interrupted = this.running?.interruptedAt !== undefined;
      const ename = interrupted ? "Interrupted" : "ExecutorDied";
      const evalue = interrupted
        ? "the cell could not be interrupted, so the executor was restarted: the variables of earlier cells are lost"
        : `${e.message}; a new executor was started: the variables of earlier cells are lost`;
      return { error: { ename, evalue, traceback: [`${RED}${ename}${RESET}: ${evalue}`] } };
    } finally {
      clearTimeout(this.running?.fallback);
      this.running = undefined;
      this.awaitingInput = undefined;
    }
  }

  /** user_expressions: evaluated after a successful cell, in its context (as IPython does). */
  private async evaluate(expressions: unknown, count: number): Promise<Record<string, ExpressionResult>> {
    if (expressions === null || typeof expressions !== "object" || Object.keys(expressions).length === 0) return {};
    const valid = Object.fromEntries(Object.entries(expressions).filter(([, v]) => typeof v === "string")) as Record<string, string>;
    try {
      return await this.executor.evaluate(valid, count);
    } catch (e) {
      if (!(e instanceof ExecutorDied)) throw e;
      const died: ExpressionResult = { status: "error", ename: "ExecutorDied", evalue: e.message, traceback: [] };
      return Object.fromEntries(Object.keys(valid).map((k) => [k, died]));
    }
  }

  /** `expr?` shows the documentation of expr in the pager (IPython's convention). */
  private async page(m: Message, expr: string, count: number): Promise<boolean> {
    const { found, text } = await this.executor.inspect(expr, expr.length, 1);
    if (!found) this.messenger.publish(m, "stream", { name: "stdout", text: `Object \`${expr}\` not found.\n` });
    const payload = found ? [{ source: "page", data: { "text/plain": text }, start: 0 }] : [];
    this.messenger.reply("shell", m, { status: "ok", execution_count: count, payload, user_expressions: {} });
    return false;
  }

  /** A cell's output (or a raw write to the executor's stdout/stderr), published under its request. */
  onOutput(m: OutputMessage): void {
    const parent = this.cells.get(m.cell);
    if (parent?.silent) return;
    switch (m.type) {
      case "stream":
        return this.messenger.publish(parent?.msg, "stream", { name: m.name, text: m.text });
      case "display":
        return this.messenger.publish(parent?.msg, m.update ? "update_display_data" : "display_data", m.content);
      case "clear_output":
        return this.messenger.publish(parent?.msg, "clear_output", { wait: m.wait });
      case "execute_result": {
        const count = parent?.executionCount ?? this.executionCount;
        const text = m.data["text/plain"];
        if (typeof text === "string") this.history.setOutput(count, text);
        return this.messenger.publish(parent?.msg, "execute_result", { execution_count: count, data: m.data, metadata: m.metadata });
      }
    }
  }

  /** input() in a cell: asks the frontend through stdin, if the request allowed it (allow_stdin). */
  onInputRequest(r: InputRequest): void {
    const parent = this.cells.get(r.cell);
    if (!parent || this.running?.cell !== r.cell)
      return this.executor.answerInput(r.id, { error: "input() works only while its cell runs" });
    if (parent.msg.content.allow_stdin !== true)
      return this.executor.answerInput(r.id, { error: "this frontend does not accept input (the request's allow_stdin is false)" });
    const request = this.messenger.inputRequest(parent.msg, r.prompt, r.password);
    this.awaitingInput = { id: r.id, request };
  }

  /** input_reply on stdin: the answer to the pending input(). */
  onStdin(m: Message): void {
    const waiting = this.awaitingInput;
    const answers = (m.parent_header as { msg_id?: string }).msg_id;
    if (m.header.msg_type !== "input_reply" || !waiting || (answers !== undefined && answers !== waiting.request)) {
      this.log(`ignored ${m.header.msg_type} on stdin`);
      return;
    }
    this.awaitingInput = undefined;
    this.executor.answerInput(waiting.id, { value: typeof m.content.value === "string" ? m.content.value : "" });
  }

  /** Interrupts the running cell, if any (interrupt_request, or SIGINT to the kernel). */
  interrupt(): void {
    const running = this.running;
    if (!running) return;
    this.executor.interrupt();
    if (running.interruptedAt !== undefined) return;
    running.interruptedAt = Date.now();
    // Last resort, should the executor not answer at all: replace it (its variables are lost, and the cell's
    // error says so). The watchdog normally ends the cell well before this.
    running.fallback = setTimeout(() => {
      if (this.running !== running) return;
      this.log("the executor did not answer an interrupt; restarting it");
      this.executor.restart();
    }, this.graceMs + 2500);
  }
}
