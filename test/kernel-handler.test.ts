/**
 * The kernel's request handler without sockets: an in-memory transport hands it Jupyter messages and records
 * what it sends back, and a real executor process runs the cells (tslab, the watchdog, the DSL). The handler
 * comes from dist/ (built if stale), so that its executor and watchdog thread run as shipped.
 */
import { before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { KernelHandler } from "../kernel/handler.js";
import { StreamBatcher, type InChannel, type OutChannel, type Transport } from "../kernel/protocol/transport.js";
import { newHeader, type Content, type Message } from "../kernel/protocol/wire.js";
import { median } from "../src/core/stats.js";
import { ensureBuilt } from "./helpers/build.js";
import { REPO, tempDir } from "./helpers/paths.js";

let Handler: typeof KernelHandler;
before(async () => {
  ensureBuilt();
  Handler = (await import(path.join(REPO, "dist", "kernel", "handler.js"))).KernelHandler;
});

/** Records every message the handler sends; waits for the ones a test expects. */
class MemoryTransport implements Transport {
  readonly sent: { channel: OutChannel; message: Message }[] = [];
  private wake: (() => void)[] = [];

  send(channel: OutChannel, message: Message): void {
    this.sent.push({ channel, message });
    for (const w of this.wake.splice(0)) w();
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  /** The first message (from `from` on) that satisfies `match`, waiting for it up to `timeoutMs`. */
  async next(match: (s: { channel: OutChannel; message: Message }) => boolean, timeoutMs = 60_000, from = 0): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.sent.slice(from).find(match);
      if (found) return found.message;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no such message arrived in time");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }
}

const parentId = (m: Message) => (m.parent_header as { msg_id?: string }).msg_id;

interface Session {
  handler: KernelHandler;
  transport: MemoryTransport;
  /** Sends a request; on shell, resolves once its idle status arrived, with the reply and its iopub messages. */
  request(msgType: string, content?: Content, channel?: InChannel): Promise<{ reply: Message; iopub: Message[]; stdin: Message[] }>;
  /** Sends without waiting; returns the message. */
  post(msgType: string, content?: Content, channel?: InChannel): Message;
}

function message(msgType: string, content: Content): Message {
  return {
    identities: [Buffer.from("client-1")],
    header: newHeader(msgType, "test"),
    parent_header: {},
    metadata: {},
    content,
    buffers: [],
  };
}

function session(t: TestContext, cwd?: string, logs: string[] = []): Session {
  const transport = new MemoryTransport();
  const handler = new Handler(transport, { log: (text) => logs.push(text), cwd });
  t.after(() => handler.close());
  const post = (msgType: string, content: Content = {}, channel: InChannel = "shell") => {
    const m = message(msgType, content);
    handler.receive(channel, m);
    return m;
  };
  return {
    handler,
    transport,
    post,
    async request(msgType, content = {}, channel = "shell") {
      const m = post(msgType, content, channel);
      const id = m.header.msg_id;
      const mine = (s: { message: Message }) => parentId(s.message) === id;
      if (channel === "shell")
        await transport.next((s) => mine(s) && s.message.header.msg_type === "status" && s.message.content.execution_state === "idle");
      const reply = await transport.next((s) => mine(s) && s.channel === channel);
      const of = (channel: OutChannel) => transport.sent.filter((s) => s.channel === channel && mine(s)).map((s) => s.message);
      return { reply, iopub: of("iopub"), stdin: of("stdin") };
    },
  };
}

const kinds = (iopub: Message[]) => iopub.map((m) => m.header.msg_type).filter((k) => k !== "status");

async function cell(s: Session, code: string, content: Content = {}) {
  return s.request("execute_request", { code, silent: false, store_history: true, allow_stdin: false, ...content });
}

test("kernel_info on shell: busy, the reply to the request's sender, idle", async (t) => {
  const s = session(t);
  const { reply, iopub } = await s.request("kernel_info_request");
  assert.equal(reply.content.protocol_version, "5.3");
  assert.equal((reply.content.language_info as { name: string }).name, "typescript");
  assert.deepEqual(reply.identities, [Buffer.from("client-1")]);
  assert.deepEqual(
    iopub.map((m) => m.content.execution_state),
    ["busy", "idle"],
  );
  const order = s.transport.sent.map((x) => `${x.channel}:${x.message.header.msg_type}:${x.message.content.execution_state ?? ""}`);
  assert.ok(order.indexOf("shell:kernel_info_reply:") < order.indexOf("iopub:status:idle"), order.join(" "));
});

test("execute: input, stdout, the last expression's value, an ok reply and the history", async (t) => {
  const s = session(t);
  const { reply, iopub } = await cell(s, 'console.log("hi"); 6 * 7');
  assert.equal(reply.content.status, "ok");
  assert.equal(reply.content.execution_count, 1);
  assert.deepEqual(kinds(iopub), ["execute_input", "stream", "execute_result"]);
  assert.equal(iopub.find((m) => m.header.msg_type === "stream")!.content.text, "hi\n");
  assert.deepEqual((iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "42");
  const history = await s.request("history_request", { hist_access_type: "tail", n: 1, output: true });
  assert.deepEqual(history.reply.content.history, [[1, 1, ['console.log("hi"); 6 * 7', "42"]]]);
});

test("variables live on from cell to cell; silent cells publish nothing and keep the count", async (t) => {
  const s = session(t);
  await cell(s, "const base = 20;");
  const silent = await cell(s, "console.log('quiet'); base", { silent: true });
  assert.deepEqual(kinds(silent.iopub), []);
  const { iopub, reply } = await cell(s, "base + 1");
  assert.equal(reply.content.execution_count, 2);
  assert.equal((iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "21");
});

test("a failed cell: an error output and reply; the cells queued behind it are aborted", async (t) => {
  const s = session(t);
  const first = s.post("execute_request", { code: "throw new Error('first fails')" });
  const second = await cell(s, "console.log('must not run')");
  const failed = await s.transport.next((x) => parentId(x.message) === first.header.msg_id && x.channel === "shell");
  assert.equal(failed.content.status, "error");
  assert.equal(failed.content.evalue, "first fails");
  assert.equal(second.reply.content.status, "aborted");
  assert.deepEqual(kinds(second.iopub), []);
});

test("complete and inspect: the TypeScript language service, cursors in code points", async (t) => {
  const s = session(t);
  const code = "const 𝑥 = 'x'; 𝑥.toUpperC";
  const completion = await s.request("complete_request", { code, cursor_pos: Array.from(code).length });
  assert.deepEqual(completion.reply.content.matches, ["toUpperCase"]);
  assert.equal(completion.reply.content.cursor_start, Array.from(code).length - "toUpperC".length);
  const inspection = await s.request("inspect_request", { code: "Math.max", cursor_pos: 6, detail_level: 0 });
  assert.equal(inspection.reply.content.found, true);
  assert.match(String((inspection.reply.content.data as Content)["text/plain"]), /max\(/);
});

test("is_complete answers without the executor", async (t) => {
  const s = session(t);
  assert.equal((await s.request("is_complete_request", { code: "function f() {" })).reply.content.status, "incomplete");
  assert.equal((await s.request("is_complete_request", { code: "1 +* 2" })).reply.content.status, "invalid");
});

test("interrupt_request on control ends a busy synchronous cell; earlier variables survive", async (t) => {
  const s = session(t);
  const setup = await cell(s, "let spins = 0; const kept = 'kept';");
  assert.equal(setup.reply.content.status, "ok", JSON.stringify(setup.reply.content));
  const busy = s.post("execute_request", { code: "while (true) { spins++; }" });
  await s.transport.next((x) => parentId(x.message) === busy.header.msg_id && x.message.header.msg_type === "execute_input");
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  const control = await s.request("interrupt_request", {}, "control");
  assert.equal(control.reply.content.status, "ok");
  const reply = await s.transport.next((x) => parentId(x.message) === busy.header.msg_id && x.channel === "shell", 30_000);
  assert.equal(reply.content.ename, "Interrupted");
  assert.match(String(reply.content.evalue), /variables of earlier cells are intact/);
  assert.ok(Date.now() - started < 10_000, `the interrupt took ${Date.now() - started} ms`);
  await s.transport.next((x) => parentId(x.message) === busy.header.msg_id && x.message.content.execution_state === "idle");
  const after = await cell(s, "`${kept} ${spins > 0}`");
  assert.equal(after.reply.content.status, "ok", JSON.stringify(after.reply.content));
  assert.equal((after.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "'kept true'");
});

test("input(): an input_request on stdin to the cell's sender, answered by input_reply", async (t) => {
  const s = session(t);
  const asking = s.post("execute_request", { code: "const name = await input('Name? '); `hello ${name}`", allow_stdin: true });
  const request = await s.transport.next((x) => x.channel === "stdin");
  assert.equal(request.header.msg_type, "input_request");
  assert.deepEqual(request.content, { prompt: "Name? ", password: false });
  assert.equal(parentId(request), asking.header.msg_id);
  assert.deepEqual(request.identities, [Buffer.from("client-1")]);
  const answer = message("input_reply", { value: "Ada" });
  answer.parent_header = request.header;
  s.handler.receive("stdin", answer);
  const result = await s.transport.next(
    (x) => parentId(x.message) === asking.header.msg_id && x.message.header.msg_type === "execute_result",
  );
  assert.equal((result.content.data as Content)["text/plain"], "'hello Ada'");
});

test("input() where the frontend allows no stdin fails with a clear message", async (t) => {
  const s = session(t);
  const { reply } = await cell(s, "await input('Name? ')", { allow_stdin: false });
  assert.equal(reply.content.ename, "InputUnavailable");
  assert.match(String(reply.content.evalue), /allow_stdin is false/);
  assert.equal((reply.content.traceback as string[]).length, 1, "explained by its message alone");
});

test("user_expressions: each evaluated after the cell, as a mimebundle or an error", async (t) => {
  const s = session(t);
  const { reply } = await cell(s, "const x = 21;", { user_expressions: { double: "x * 2", bad: "x(", missing: "nope" } });
  const results = reply.content.user_expressions as Record<string, Content>;
  assert.deepEqual(results.double, { status: "ok", data: { "text/plain": "42" }, metadata: {} });
  assert.equal(results.bad!.status, "error");
  assert.equal(results.bad!.ename, "TypeScriptError");
  assert.equal(results.missing!.status, "error");
  assert.match(String(results.missing!.evalue), /Cannot find name 'nope'/);
});

test("a runtime error points at the cell and line the user wrote: a throw on line 3 of cell 5", async (t) => {
  const s = session(t);
  for (let i = 1; i <= 4; i++) await cell(s, `const v${i} = ${i};`);
  const code = ["// cell five", "function boom(): never {", "  throw new Error('boom');", "}", "", "boom();"].join("\n");
  const { reply } = await cell(s, code);
  assert.equal(reply.content.execution_count, 5);
  const traceback = (reply.content.traceback as string[]).join("\n");
  assert.match(traceback, /at boom \(Cell In\[5\], line 3:/);
  assert.match(traceback, /throw new Error\('boom'\);/, "the line itself is shown");
  assert.match(traceback, /Cell In\[5\], line 6:/, "the call site too");
  assert.doesNotMatch(traceback, /evalmachine|tslab|node:internal/);
});

test("frames inside loralab are folded to one line naming the function the cell called", async (t) => {
  const s = session(t);
  const { reply } = await cell(s, ['import { corpusBleu } from "loralab";', "", "corpusBleu([null as any], [[null as any]]);"].join("\n"));
  const traceback = reply.content.traceback as string[];
  const inLoralab = traceback.filter((l) => /\(loralab(: \d+ frames)?\)$/.test(l));
  assert.equal(inLoralab.length, 1, traceback.join("\n"));
  assert.match(inLoralab[0]!, /at corpusBleu \(loralab: \d+ frames\)/);
  assert.match(traceback.join("\n"), /Cell In\[1\], line 3:/);
});

test("the DSL is loaded on first use: a kernel whose cells do not touch it never loads tfjs", async (t) => {
  const s = session(t);
  const loaded = "Object.keys(require.cache).some((k) => k.includes('@tensorflow/tfjs-core'))";
  const before = await cell(s, `1 + 1; ${loaded}`);
  assert.equal((before.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "false");
  const after = await cell(s, `typeof model === "function" && typeof dataset === "function" && ${loaded}`);
  assert.equal((after.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "true");
});

test("a shorthand property names an earlier cell's variable: { lr } is { lr: lr }, and a local lr stays local", async (t) => {
  const s = session(t);
  const result = async (code: string) => {
    const out = await cell(s, code);
    assert.equal(out.reply.content.status, "ok", JSON.stringify(out.reply.content));
    return (out.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"];
  };
  await result("const lr = 0.5; const steps = 3; lr");
  assert.equal(await result("const options = { lr, steps, name: 'x' }; JSON.stringify(options)"), `'{"lr":0.5,"steps":3,"name":"x"}'`);
  assert.equal(await result("((lr: number) => ({ lr }))(7).lr"), "7");
  assert.equal(await result("[1, 2].map((steps) => ({ lr, steps })).map((o) => o.lr * o.steps).join()"), "'0.5,1'");
  // A destructured property named like an earlier cell's variable is a property name, not that variable.
  assert.equal(await result("const { lr: rate, ...rest } = { lr: 2, steps: 4 }; [rate, rest.steps, lr].join()"), "'2,4,0.5'");
  assert.equal(await result("(({ steps: _s, ...row }) => Object.keys(row).join())({ steps: 1, a: 2 })"), "'a'");
});

test("the DSL's types join the checker without a conflict: display in cells is the kernel's", async (t) => {
  const logs: string[] = [];
  const s = session(t, undefined, logs);
  const out = await cell(s, `typeof model === "function" && typeof display.html === "function"`);
  assert.equal((out.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "true");
  assert.deepEqual(
    logs.filter((l) => /globals|redeclare/i.test(l)),
    [],
  );
});

test("a 5 MB string literal does not slow later cells: 1 + 1 after it costs < 2× 1 + 1 before (median)", async (t) => {
  const s = session(t);
  const timeCells = async (n: number) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      await cell(s, "1 + 1");
      times.push(performance.now() - started);
    }
    return median(times);
  };
  await cell(s, "1 + 1"); // the compiler's first program
  const before = await timeCells(9);
  const literal = await cell(s, `const big = "${"x".repeat(5_000_000)}"; big.length`);
  assert.equal(literal.reply.content.status, "ok");
  const after = await timeCells(9);
  assert.ok(after < 2 * before, `1 + 1 took ${after.toFixed(1)} ms after the literal, ${before.toFixed(1)} ms before`);
  const typed = await cell(s, "const n: number = big.length; n");
  assert.equal((typed.iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"], "5000000");
});

test("shutdown_request on control: an ok reply, the executor ends, the handler closes", async (t) => {
  const s = session(t);
  await cell(s, "1");
  const pid = s.handler.executorPid!;
  const { reply } = await s.request("shutdown_request", { restart: false }, "control");
  assert.deepEqual(reply.content, { status: "ok", restart: false });
  await s.handler.closed;
  assert.throws(() => process.kill(pid, 0), /ESRCH/, "the executor process is gone");
});

test("stream batching: consecutive writes of one cell and stream join; any other message flushes first", async () => {
  const inner = new MemoryTransport();
  const batcher = new StreamBatcher(inner, 10_000);
  const parent = message("execute_request", {});
  const stream = (name: string, text: string) => ({ ...message("stream", { name, text }), parent_header: parent.header });
  batcher.send("iopub", stream("stdout", "a"));
  batcher.send("iopub", stream("stdout", "b"));
  batcher.send("iopub", stream("stderr", "c"));
  batcher.send("shell", message("execute_reply", {}));
  assert.deepEqual(
    inner.sent.map((s) => [s.channel, s.message.header.msg_type, s.message.content.text]),
    [
      ["iopub", "stream", "ab"],
      ["iopub", "stream", "c"],
      ["shell", "execute_reply", undefined],
    ],
  );
});

test("the executor runs in the folder the handler was given", async (t) => {
  const dir = tempDir("handler-cwd");
  fs.writeFileSync(path.join(dir, "data.txt"), "from the notebook folder");
  const s = session(t, dir);
  const { iopub } = await cell(s, 'require("node:fs").readFileSync("data.txt", "utf8")');
  assert.equal(
    (iopub.find((m) => m.header.msg_type === "execute_result")!.content.data as Content)["text/plain"],
    "'from the notebook folder'",
  );
});
