/**
 * The Jupyter kernel: unit checks of its parts, the signature rules on a live kernel (over zeromq), and
 * Debian's jupyter_kernel_test + jupyter_client + nbconvert against the installed kernelspec.
 * The Python suites need /usr/bin/python3 with jupyter_kernel_test (apt-get install python3-jupyter-kernel-test
 * python3-jupyter-client jupyter-nbconvert python3-nbclient python3-ipykernel); without it they are skipped
 * and say so.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as zmq from "zeromq";
import { ensureBuilt } from "./helpers/build.js";
import { jupyterEnv, notebookOf } from "./helpers/jupyter.js";
import { REPO, STORIES, tempDir } from "./helpers/paths.js";
import { Signer, decode, encode, newHeader, type Message } from "../kernel/protocol/wire.js";
import { History, globToRegExp } from "../kernel/history.js";
import { isComplete } from "../kernel/is-complete.js";
import { codePointsToUtf16, utf16ToCodePoints } from "../kernel/messenger.js";
import { kernelSpec, kernelsDir, userDataDir } from "../kernel/install.js";
import { logoPng, logoSvg } from "../kernel/logo.js";
import { normalizeBundle, toBundle } from "../kernel/rich-display.js";
import { rewriteConfigLiterals } from "../kernel/sugar.js";

const PYTHON = "/usr/bin/python3";
const CLI = path.join(REPO, "bin", "loralab.js");

function pythonHas(modules: string): boolean {
  return fs.existsSync(PYTHON) && spawnSync(PYTHON, ["-c", `import ${modules}`]).status === 0;
}

const quietPython = { PYDEVD_DISABLE_FILE_VALIDATION: "1", PYTHONWARNINGS: "ignore" };

describe("kernel parts", () => {
  test("HMAC-SHA256 signatures: a message verifies once; a changed byte or a replay is rejected", () => {
    const signer = new Signer("secret-key");
    const msg: Message = {
      identities: [Buffer.from("id")],
      header: newHeader("execute_request", "s"),
      parent_header: {},
      metadata: {},
      content: { code: "1" },
      buffers: [],
    };
    const frames = encode(msg, signer);
    assert.deepEqual(decode(frames, new Signer("secret-key")).content, { code: "1" });
    const receiver = new Signer("secret-key");
    decode(frames, receiver);
    assert.throws(() => decode(frames, receiver), /replayed/);
    const tampered = frames.map((f) => Buffer.from(f));
    tampered[tampered.length - 1] = Buffer.from(JSON.stringify({ code: "2" }));
    assert.throws(() => decode(tampered, new Signer("secret-key")), /invalid signature/);
    assert.throws(() => decode(frames, new Signer("other-key")), /invalid signature/);
    assert.throws(() => new Signer("k", "hmac-md5"), /unsupported/);
    assert.equal(encode(msg, new Signer(""))[2]!.toString(), "", "an empty key sends empty signatures");
  });

  test("is_complete: complete, incomplete (with an indent) and invalid code", () => {
    for (const code of ["1 + 2", "const x = 1;", "await f()", "", "for (;;) {\n  x()\n}"])
      assert.equal(isComplete(code).status, "complete", code);
    for (const code of ["function f() {", "[1,", "`open template", "/* comment", "x."])
      assert.equal(isComplete(code).status, "incomplete", code);
    assert.equal(isComplete("if (x) {").indent, "  ");
    for (const code of ["const = 5;", "1 +* 2", "}", "'unterminated"]) assert.equal(isComplete(code).status, "invalid", code);
  });

  test("config literal sugar: <r:8> in call arguments becomes {r:8}, one character for one; nothing else moves", () => {
    const same = (code: string) => assert.equal(rewriteConfigLiterals(code), code, code);
    assert.equal(rewriteConfigLiterals("model.lora(<r:8>)"), "model.lora({r:8})");
    assert.equal(
      rewriteConfigLiterals("base.lora(<r:8, alpha:16>).train(ds, <epochs: 3>)"),
      "base.lora({r:8, alpha:16}).train(ds, {epochs: 3})",
    );
    assert.equal(rewriteConfigLiterals("f(x, <lr: 2e-4, sched: <warmup: 10>>)"), "f(x, {lr: 2e-4, sched: {warmup: 10}})");
    assert.equal(rewriteConfigLiterals("f(<r: [1, 2], t: {a: 1}>)"), "f({r: [1, 2], t: {a: 1}})");
    assert.equal(rewriteConfigLiterals("`${f(<r:8>)} f(<r:8>)`"), "`${f({r:8})} f(<r:8>)`");
    assert.equal(rewriteConfigLiterals("f(/<r:8>/.test(s), <r: 1>)"), "f(/<r:8>/.test(s), {r: 1})");
    assert.equal(rewriteConfigLiterals("return /<r:8>/"), "return /<r:8>/");
    for (const code of [
      "f<T>(x)",
      "f(<any>x)",
      "f(<T,>(x: T) => x)",
      "f(a < b, c > d)",
      "new Map<string, number>()",
      "const s = 'f(<r:8>)'",
      "// f(<r:8>)",
      "/* f(<r:8>) */",
      "x = a / 2 > b",
    ])
      same(code);
    const code = "model.lora(<r:8>, <alpha: 16>) // <r:8>";
    assert.equal(rewriteConfigLiterals(code).length, code.length);
  });

  test("history: tail, range and glob search (unique, n), with outputs", () => {
    const h = new History();
    ["6 * 7", "x", "6 * 7", "y = 6"].forEach((code, i) => h.add(i + 1, code));
    h.setOutput(1, "42");
    assert.deepEqual(h.query({ hist_access_type: "tail", n: 2 }), [
      [1, 3, "6 * 7"],
      [1, 4, "y = 6"],
    ]);
    assert.deepEqual(h.query({ hist_access_type: "tail", n: 1, output: true }), [[1, 4, ["y = 6", null]]]);
    assert.deepEqual(h.query({ hist_access_type: "range", session: 0, start: 1, stop: 2, output: true }), [[1, 1, ["6 * 7", "42"]]]);
    assert.equal(h.query({ hist_access_type: "search", pattern: "6 ?*" }).length, 2);
    assert.equal(h.query({ hist_access_type: "search", pattern: "6 ?*", unique: true }).length, 1);
    assert.equal(h.query({ hist_access_type: "search", pattern: "*", n: 3 }).length, 3);
    assert.ok(globToRegExp("[xy]").test("y") && !globToRegExp("[^xy]").test("y") && !globToRegExp("6*").test("x6"));
  });

  test("cursor positions: Jupyter's code points ↔ JavaScript's UTF-16 units", () => {
    const s = "const 🦙 = 1; 🦙.";
    assert.equal(codePointsToUtf16(s, 8), 9);
    assert.equal(utf16ToCodePoints(s, 9), 8);
    assert.equal(codePointsToUtf16(s, Array.from(s).length), s.length);
  });

  test("mimebundles: Symbol.for('Jupyter.display'), bytes as base64, JSON kept as values, text/plain always", async () => {
    assert.deepEqual(toBundle(42), { "text/plain": "42" });
    const rich = { [Symbol.for("Jupyter.display")]: () => ({ "text/html": "<b>x</b>", "image/png": new Uint8Array([1, 2]) }) };
    const bundle = toBundle(rich) as Record<string, unknown>;
    assert.equal(bundle["text/html"], "<b>x</b>");
    assert.equal(bundle["image/png"], "AQI=");
    assert.match(String(bundle["text/plain"]), /text\/html/);
    const later = await toBundle({ [Symbol.for("Jupyter.display")]: async () => ({ "text/markdown": "# hi", "text/plain": "hi" }) });
    assert.deepEqual(later, { "text/markdown": "# hi", "text/plain": "hi" });
    assert.deepEqual(normalizeBundle({ "application/json": { a: 1 }, "not a mime": 1 }).constructor, Object);
    assert.deepEqual(normalizeBundle({ "application/json": { a: 1 } })["application/json"], { a: 1 });
  });

  test("mimebundles: arquero tables as HTML + text; vega-lite specs as charts with a PNG rendered in-process", async () => {
    const aq = await import("arquero");
    const table = aq.from(Array.from({ length: 150 }, (_, i) => ({ step: i + 1, loss: 1 / (i + 1) })));
    const bundle = toBundle(table) as Record<string, string>;
    assert.match(bundle["text/html"]!, /<table[\s\S]*<th[^>]*>step<\/th>[\s\S]*<td[^>]*>100<\/td>/);
    assert.doesNotMatch(bundle["text/html"]!, /<td[^>]*>101<\/td>/);
    assert.match(bundle["text/plain"]!, /\|step\|loss\|[\s\S]*100 of 150 rows shown/);
    const spec = {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      data: {
        values: [
          { x: 1, y: 2 },
          { x: 2, y: 3 },
        ],
      },
      mark: "line",
      encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
    };
    const chart = await toBundle(spec);
    assert.deepEqual(chart["application/vnd.vegalite.v5+json"], spec);
    assert.deepEqual([...Buffer.from(String(chart["image/png"]), "base64").subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  test("kernelspec: absolute node and loralab paths, language, interrupt mode; where --user/--prefix write", () => {
    const spec = kernelSpec({}, "1.2.3");
    assert.equal(spec.argv[0], process.execPath);
    assert.ok(path.isAbsolute(spec.argv[1]!) && spec.argv[1]!.endsWith(path.join("bin", "loralab.js")));
    assert.deepEqual(spec.argv.slice(2), ["kernel", "start", "-f", "{connection_file}"]);
    assert.equal(spec.language, "typescript");
    assert.equal(spec.interrupt_mode, "message");
    assert.equal(kernelsDir({ prefix: "/opt/x" }), path.join("/opt/x", "share", "jupyter", "kernels"));
    if (process.platform === "linux") assert.equal(userDataDir({ XDG_DATA_HOME: "/xdg" }), "/xdg/jupyter");
    assert.equal(userDataDir({ JUPYTER_DATA_DIR: "/jd" }), "/jd");
    assert.throws(() => kernelsDir({ user: true, prefix: "/p" }), /one of/);
    const png = logoPng(32);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    assert.equal(png.readUInt32BE(16), 32);
    assert.match(logoSvg(), /^<svg/);
  });
});

describe("kernel CLI and a live kernel", () => {
  before(ensureBuilt);

  test("loralab kernel install --prefix writes kernel.json and the logos; bad flags are user errors", () => {
    const prefix = tempDir("kernelspec");
    const r = spawnSync(process.execPath, [CLI, "kernel", "install", "--prefix", prefix, "--name", "lt", "--display-name", "LoRA lab"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const dir = path.join(prefix, "share", "jupyter", "kernels", "lt");
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "kernel.json"), "utf8"));
    assert.equal(spec.display_name, "LoRA lab");
    assert.equal(spec.argv[0], process.execPath);
    for (const f of ["logo-32x32.png", "logo-64x64.png", "logo-svg.svg"]) assert.ok(fs.statSync(path.join(dir, f)).size > 0, f);
    const bad = spawnSync(process.execPath, [CLI, "kernel", "install", "--user", "--prefix", prefix], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^loralab kernel: choose one of/m);
    const missing = spawnSync(process.execPath, [CLI, "kernel", "start"], { encoding: "utf8" });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /-f CONNECTION_FILE is required/);
  });

  describe("signatures on the wire", () => {
    const key = "a-test-key";
    let kernel: ChildProcess;
    let stderr = "";
    let shell: zmq.Dealer;
    let marker: string;
    const freePort = () =>
      new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, "127.0.0.1", () => {
          const port = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(port));
        });
      });

    before(async () => {
      const dir = tempDir("conn");
      marker = path.join(dir, "executed");
      const ports = {
        shell_port: await freePort(),
        iopub_port: await freePort(),
        stdin_port: await freePort(),
        control_port: await freePort(),
        hb_port: await freePort(),
      };
      const file = path.join(dir, "kernel.json");
      fs.writeFileSync(file, JSON.stringify({ ...ports, ip: "127.0.0.1", transport: "tcp", key, signature_scheme: "hmac-sha256" }));
      kernel = spawn(process.execPath, [CLI, "kernel", "start", "-f", file], { stdio: ["ignore", "ignore", "pipe"] });
      kernel.stderr!.setEncoding("utf8").on("data", (t: string) => (stderr += t));
      shell = new zmq.Dealer({ receiveTimeout: 20_000 });
      shell.connect(`tcp://127.0.0.1:${ports.shell_port}`);
    });

    after(async () => {
      shell.close();
      kernel.kill("SIGKILL");
    });

    const request = (content: Record<string, unknown>, msgType = "execute_request"): Message => ({
      identities: [],
      header: newHeader(msgType, "test-session"),
      parent_header: {},
      metadata: {},
      content,
      buffers: [],
    });

    async function replyTo(frames: Buffer[]): Promise<Message> {
      await shell.send(frames);
      for (;;) {
        const reply = decode(await shell.receive(), new Signer(key));
        if (reply.header.msg_type.endsWith("_reply")) return reply;
      }
    }

    test("a message with a bad signature, or a replayed one, is dropped and logged, never executed", async () => {
      const code = `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran")`;
      // A correctly signed kernel_info first: the kernel is up and answering.
      const info = await replyTo(encode(request({}, "kernel_info_request"), new Signer(key)));
      assert.equal(info.content.status, "ok");
      const forged = encode(request({ code, silent: false }), new Signer("not-the-key"));
      await shell.send(forged);
      const signed = encode(request({ code: "1", silent: false }), new Signer(key));
      const reply = await replyTo(signed);
      assert.equal(reply.content.status, "ok");
      assert.equal(fs.existsSync(marker), false, "the forged cell must not run");
      assert.match(stderr, /dropped a message on shell: invalid signature/);
      await shell.send(signed);
      const again = await replyTo(encode(request({ code: "2", silent: false }), new Signer(key)));
      assert.equal(again.content.execution_count, 2, "the replayed cell was not counted");
      assert.match(stderr, /dropped a message on shell: duplicate signature/);
    });
  });
});

describe("Jupyter clients (Debian's jupyter_kernel_test, jupyter_client, nbconvert)", () => {
  const hasSuite = pythonHas("jupyter_kernel_test, jupyter_client");
  const skip = hasSuite
    ? false
    : `${PYTHON} lacks jupyter_kernel_test/jupyter_client (apt-get install python3-jupyter-kernel-test python3-jupyter-client)`;
  let env: NodeJS.ProcessEnv;
  const name = `loralab-test-${process.pid}`;

  before(() => {
    if (!hasSuite) return;
    ensureBuilt();
    env = {
      ...jupyterEnv(name),
      ...quietPython,
      LORALAB_KERNEL_NAME: name,
      LORALAB_DSL: path.join(REPO, "dist", "dsl", "index.js"),
      ...(fs.existsSync(path.join(STORIES, "config.json")) ? { LORALAB_STORIES: STORIES } : {}),
    };
  });

  function unittest(module: string): void {
    const r = spawnSync(PYTHON, ["-m", "unittest", "-v", module], {
      cwd: path.join(REPO, "test", "kernel"),
      env,
      encoding: "utf8",
      timeout: 300_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /\nOK\b/, out);
    assert.doesNotMatch(out, /skipped=/, `no check may be skipped:\n${out}`);
  }

  test("jupyter_kernel_test: every check passes (test/kernel/test_loralab_kernel.py)", { skip, timeout: 300_000 }, () =>
    unittest("test_loralab_kernel"),
  );

  test(
    "cells: loralab imports and globals, ESM with top-level await, sugar, displays, errors at cell lines, stop_on_error, input() and user_expressions (test/kernel/test_cells.py)",
    { skip, timeout: 300_000 },
    () => unittest("test_cells"),
  );

  test(
    "interrupts by message and by signal end busy cells within 5 s and keep earlier variables (test/kernel/test_interrupt.py)",
    { skip, timeout: 300_000 },
    () => unittest("test_interrupt"),
  );

  test(
    "a failed tensor backend (a wasm abort) is reported in the cell and replaced; the next cells work (test/kernel/test_backend.py)",
    { skip, timeout: 300_000 },
    () => unittest("test_backend"),
  );

  test(
    "jupyter nbconvert --execute runs a notebook on the kernel",
    { skip: skip || (!fs.existsSync("/usr/bin/jupyter-nbconvert") && "jupyter-nbconvert is not installed"), timeout: 120_000 },
    () => {
      const dir = tempDir("nbconvert");
      const notebook = notebookOf(name, [
        "const xs = [1, 2, 3];\nconsole.log('sum', xs.reduce((a, b) => a + b));",
        "display.markdown('**bold**'); xs.length",
      ]);
      fs.writeFileSync(path.join(dir, "in.ipynb"), JSON.stringify(notebook));
      const r = spawnSync("/usr/bin/jupyter", ["nbconvert", "--to", "notebook", "--execute", "--output", "out.ipynb", "in.ipynb"], {
        cwd: dir,
        env,
        encoding: "utf8",
        timeout: 110_000,
      });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      const out = JSON.parse(fs.readFileSync(path.join(dir, "out.ipynb"), "utf8"));
      const text = (v: string | string[]) => (Array.isArray(v) ? v.join("") : v);
      const [first, second] = out.cells;
      assert.deepEqual(
        first.outputs.map((o: { output_type: string; name: string; text: string[] }) => [o.output_type, o.name, text(o.text)]),
        [["stream", "stdout", "sum 6\n"]],
      );
      assert.equal(second.outputs[0].output_type, "display_data");
      assert.equal(text(second.outputs[0].data["text/markdown"]), "**bold**");
      assert.equal(second.outputs[1].output_type, "execute_result");
      assert.equal(text(second.outputs[1].data["text/plain"]), "3");
      assert.equal(second.execution_count, 2);
    },
  );
});
