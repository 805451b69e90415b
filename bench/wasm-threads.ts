/**
 * An experiment, not part of loralab: tfjs-wasm's multi-threaded SIMD build in Node.
 *
 *   npm run build && node dist/bench/wasm-threads.js matmul [--threads N] [--build threaded|simd]
 *   node dist/bench/wasm-threads.js train [--threads N] [--build threaded|simd] [--config small] [--mode lora] [--steps 2]
 *   node dist/bench/wasm-threads.js exit [--threads N] [--release none|unref|terminate]
 *
 * (compiled, not under tsx: the pthread workers inherit Node's flags, and tsx's loader chokes on their script)
 *
 * tfjs chooses the threaded build only where WASM_HAS_MULTITHREAD_SUPPORT holds, which it sets false in
 * Node, and its pthread workers would start from a blob: URL, which Node's worker_threads refuse. Here the
 * Emscripten factory is called directly, with the worker script written to a real file, and the backend
 * is registered under tfjs's name "wasm" (so every wasm kernel, loralab's included, applies). Prints one
 * JSON line per measurement.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
import { BackendWasm, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { initBackend, tf } from "../src/backend/index.js";
import { benchShape } from "../src/cli/bench-setup.js";
import { trainBench } from "../src/cli/bench-train.js";

const require = createRequire(import.meta.url);
const OUT = path.join(path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "wasm-out");

interface EmscriptenModule {
  cwrap(name: string, ret: string | null, args: string[]): unknown;
  PThread?: { unusedWorkers: { unref(): void; terminate(): void }[]; runningWorkers: { unref(): void }[]; terminateAllThreads(): void };
  tfjs?: unknown;
}

/** The threaded SIMD module, its workers started from a real file. */
async function threadedModule(): Promise<EmscriptenModule> {
  const factory = require(path.join(OUT, "tfjs-backend-wasm-threaded-simd.js")) as (config: object) => Promise<EmscriptenModule>;
  const { wasmWorkerContents } = require(path.join(OUT, "tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  const workerFile = path.join(os.tmpdir(), `loralab-tfjs-wasm-worker-${process.pid}.js`);
  // The contents were written for a blob: its "\n" escapes came out as newlines inside string literals.
  fs.writeFileSync(workerFile, wasmWorkerContents.replace(/\n/g, "\\n"));
  process.on("exit", () => fs.rmSync(workerFile, { force: true }));
  const script = path.join(OUT, "tfjs-backend-wasm-threaded-simd.js");
  // The C++ side caps its pool at half the logical cores (it assumes two hyperthreads per core), read
  // once while the module starts: report twice the cores meanwhile, so the cap is the real count.
  const nodeOs = require("os") as typeof os;
  const cpus = nodeOs.cpus;
  nodeOs.cpus = () => [...cpus(), ...cpus()];
  try {
    return await factory({
      locateFile: (file: string) => (file.endsWith(".worker.js") ? workerFile : path.join(OUT, file)),
      mainScriptUrlOrBlob: script,
    });
  } finally {
    nodeOs.cpus = cpus;
  }
}

/** The same bridge tfjs's own init() puts on the module. */
function bridge(m: EmscriptenModule): void {
  m.tfjs = {
    init: m.cwrap("init", null, []),
    initWithThreadsCount: m.cwrap("init_with_threads_count", null, ["number"]),
    getThreadsCount: m.cwrap("get_threads_count", "number", []),
    registerTensor: m.cwrap("register_tensor", null, ["number", "number", "number"]),
    disposeData: m.cwrap("dispose_data", null, ["number"]),
    dispose: m.cwrap("dispose", null, []),
  };
}

async function useThreaded(threads: number): Promise<EmscriptenModule> {
  const m = await threadedModule();
  bridge(m);
  setThreadsCount(threads);
  tf.removeBackend("wasm");
  tf.registerBackend("wasm", () => new BackendWasm(m as never), 10);
  await initBackend("wasm");
  return m;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** GFLOP/s of [1024, K]·[K, N] products (the linear layers of `small`), wall and CPU. */
function matmul(): Record<string, number>[] {
  return [
    [512, 1408],
    [1408, 512],
    [512, 512],
  ].map(([k, n]) => {
    const [x, w] = [tf.randomNormal([1024, k!]), tf.randomNormal([k!, n!])];
    for (let i = 0; i < 3; i++) tf.tidy(() => tf.matMul(x, w)); // wasm kernels run synchronously: no need to read the result
    const [wall0, cpu0] = [performance.now(), cpuSeconds()];
    const reps = 20;
    for (let i = 0; i < reps; i++) tf.tidy(() => tf.matMul(x, w)); // wasm kernels run synchronously: no need to read the result
    const [wall, cpu] = [(performance.now() - wall0) / 1000 / reps, (cpuSeconds() - cpu0) / reps];
    tf.dispose([x, w]);
    const flops = 2 * 1024 * k! * n!;
    return { k: k!, n: n!, ms: wall * 1000, gflops: flops / wall / 1e9, cpu_ms: cpu * 1000 };
  });
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: "string", default: "2" },
    build: { type: "string", default: "threaded" },
    config: { type: "string", default: "small" },
    mode: { type: "string", default: "lora" },
    steps: { type: "string", default: "2" },
    release: { type: "string", default: "terminate" },
  },
});
const threads = Number(values.threads);
const m = values.build === "threaded" ? await useThreaded(threads) : (await initBackend("wasm"), undefined);
const actual = (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm.tfjs.getThreadsCount();
const what = { build: values.build, threads: actual };
if (positionals[0] === "matmul") for (const r of matmul()) console.log(JSON.stringify({ ...what, ...r }));
if (positionals[0] === "train") {
  const r = await trainBench(values.config, {
    shape: benchShape(values.config),
    mode: values.mode as "lora",
    steps: Number(values.steps),
    workers: 1,
    backend: "wasm",
    profile: false,
    gradientCheckpointing: false,
  });
  console.log(
    JSON.stringify({ ...what, tokens_per_s: r.tokens_per_s, step_s: r.step_s, step_cpu_s: r.step_cpu_s, peak_rss_bytes: r.peak_rss_bytes }),
  );
}
if (positionals[0] === "exit") {
  tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync());
  console.log(JSON.stringify({ ...what, release: values.release, at: Date.now() }));
}
// Without this the pthread workers keep Node's event loop, and so the process, alive.
if (m?.PThread && values.release === "unref") for (const w of [...m.PThread.unusedWorkers, ...m.PThread.runningWorkers]) w.unref();
if (m?.PThread && values.release === "terminate") m.PThread.terminateAllThreads();
