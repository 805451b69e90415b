/**
 * loralab's wasm kernels (src/backend/wasm-*.ts) against tfjs's own kernels on the cpu backend: matMul in
 * every layout the models use (2-D, batched, broadcast, each transpose) on both of its paths (a native BLAS
 * when the system has OpenBLAS, XNNPACK otherwise), its gradients (which are matmuls with transposes again),
 * the kept transposes of frozen weights, and the zero-copy Identity. And the choice of BLAS (LORALAB_BLAS).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describeBackend, initBackend, tf } from "../src/backend/index.js";
import { activeBlas, selectBlas } from "../src/backend/blas.js";
import { matMulTransposed } from "../src/nn/layers.js";
import { loadModel } from "../src/models/load.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { LoraTrainable } from "../src/train/trainable.js";
import { Trainer } from "../src/train/trainer.js";
import { keptTransposeCount } from "../src/backend/wasm-matmul.js";
import { Random } from "../src/core/random.js";
import { assertClose, on, operand, type Operand } from "./helpers/backends.js";

before(async () => {
  await initBackend("wasm");
});
after(() => selectBlas());

/** The matmul paths: each test selects its own (the choice is the process's). */
const PATHS = [
  { name: "OpenBLAS", setting: "auto" },
  { name: "XNNPACK", setting: "off" },
] as const;
const openBlas = selectBlas("auto").blas !== undefined;
/** Whether the system's dynamic linker knows OpenBLAS (Linux): then loralab must find it. */
const systemHasOpenBlas = /libopenblas\.so\.0\b/.test(spawnSync("/sbin/ldconfig", ["-p"], { encoding: "utf8" }).stdout ?? "");

/** `f` (awaited) with sgemm calls counted: proof of which path the products took. */
async function countingSgemm<T>(f: () => T): Promise<{ value: Awaited<T>; calls: number }> {
  const blas = activeBlas();
  if (!blas) return { value: await f(), calls: 0 };
  const sgemm = blas.sgemm;
  let calls = 0;
  blas.sgemm = (...args) => {
    calls++;
    sgemm(...args);
  };
  try {
    const value = await f();
    return { value, calls };
  } finally {
    blas.sgemm = sgemm;
  }
}

/** Shapes of a and b for [batch…, M, K]·[batch…, K, N] with the transposes applied to the stored layout. */
function shapes(batchA: number[], batchB: number[], m: number, k: number, n: number, ta: boolean, tb: boolean): [number[], number[]] {
  return [
    [...batchA, ...(ta ? [k, m] : [m, k])],
    [...batchB, ...(tb ? [n, k] : [k, n])],
  ];
}

/** `stock`: a broadcast loralab's kernel leaves to tfjs's own (no sgemm). */
const LAYOUTS: { name: string; batchA: number[]; batchB: number[]; stock?: true }[] = [
  { name: "2-D", batchA: [], batchB: [] },
  { name: "batched 3-D", batchA: [3], batchB: [3] },
  { name: "batched 4-D (attention)", batchA: [2, 3], batchB: [2, 3] },
  { name: "3-D times 2-D", batchA: [4], batchB: [] },
  { name: "2-D times 3-D", batchA: [], batchB: [4] },
  { name: "broadcast batch of 1", batchA: [1, 3], batchB: [2, 3], stock: true },
];

const random = new Random(11);
for (const path of PATHS) {
  const skip = path.name === "OpenBLAS" && !openBlas ? "no OpenBLAS on this system (Debian: libopenblas0)" : false;
  /** On wasm: `f` on this path, which it must have taken (sgemm called or not). */
  const on_ = async (backend: string, inputs: Operand[], f: (...xs: tf.Tensor[]) => tf.Tensor[], stock = false) => {
    selectBlas(path.setting);
    const { value, calls } = await countingSgemm(() => on(backend, inputs, f));
    if (path.name === "OpenBLAS") assert.equal(calls > 0, !stock, `sgemm calls: ${calls}`);
    return value;
  };
  for (const layout of LAYOUTS) {
    for (const [ta, tb] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const [m, k, n] = [1 + random.int(40), 1 + random.int(70), 1 + random.int(40)];
      const [sa, sb] = shapes(layout.batchA, layout.batchB, m, k, n, ta, tb);
      const inputs = [operand(sa, random), operand(sb, random)];
      const label = `${layout.name} [${sa}]·[${sb}] transposeA=${ta} transposeB=${tb}`;

      test(`${path.name}: matMul ${label} equals tfjs's cpu kernel`, { skip }, async () => {
        const f = (a: tf.Tensor, b: tf.Tensor) => [tf.matMul(a, b, ta, tb)];
        assertClose((await on_("wasm", inputs, f, layout.stock))[0]!, on("cpu", inputs, f)[0]!, label);
      });

      // Gradients only where tfjs defines them (it does not reduce over broadcast batch axes).
      if (layout.batchA.join() !== layout.batchB.join() && layout.batchA.length && layout.batchB.length) continue;
      if (layout.batchA.length !== layout.batchB.length) continue;
      test(`${path.name}: gradients of matMul ${label} equal tfjs's on cpu`, { skip }, async () => {
        const [outShape] = shapes(layout.batchA, layout.batchB, m, 1, n, false, false);
        const weights = operand([...outShape.slice(0, -1), n], random);
        const f = (a: tf.Tensor, b: tf.Tensor, w: tf.Tensor) =>
          tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb).mul(w).sum())([a, b]);
        const [wasm, cpu] = [await on_("wasm", [...inputs, weights], f), on("cpu", [...inputs, weights], f)];
        assertClose(wasm[0]!, cpu[0]!, `${label}: dA`);
        assertClose(wasm[1]!, cpu[1]!, `${label}: dB`);
      });
    }
  }
  test(`${path.name}: matMul with an inner dimension of 0 gives zeros`, { skip }, () => {
    selectBlas(path.setting);
    const out = tf.tidy(() => tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 2])).dataSync());
    assert.deepEqual([...out], [0, 0, 0, 0, 0, 0]);
  });
}

test("XNNPACK: a frozen weight's kept transpose serves later calls, and is freed with the weight's data", () => {
  selectBlas("off");
  const r = new Random(5);
  const x = operand([17, 33], r);
  const [w1, w2] = [operand([21, 33], r), operand([21, 33], r)];
  const expected = (w: Operand) => on("cpu", [x, w], (a, b) => [tf.matMul(a, b, false, true)])[0]!;
  const variable = (w: Operand) => tf.tidy(() => tf.variable(tf.tensor(w.values, w.shape), false));
  const weight = variable(w1);
  const input = tf.tensor(x.values, x.shape) as tf.Tensor2D;
  const apply = () => tf.tidy(() => matMulTransposed(input, weight as unknown as tf.Tensor2D).dataSync() as Float32Array);
  const kept = keptTransposeCount();
  assertClose(apply(), expected(w1), "first call (transposes and packs)");
  assert.equal(keptTransposeCount(), kept + 1, "one transpose kept");
  // Reuse the freed scratch memory with other data: the kept (packed) transpose must not read it.
  const clutter = Array.from({ length: 8 }, () => tf.fill([33, 21], 1e6));
  assertClose(apply(), expected(w1), "second call (kept transpose)");
  const next = variable(w2);
  weight.assign(next);
  next.dispose();
  assert.equal(keptTransposeCount(), kept, "the old value's transpose is freed");
  assertClose(apply(), expected(w2), "after assign");
  weight.dispose();
  assert.equal(keptTransposeCount(), kept, "freed with the weight");
  tf.dispose([...clutter, input]);
});

test("Identity shares the input's data, and each tensor outlives the other's disposal", () => {
  const x = tf.tensor([1, 2, 3]);
  const y = tf.clone(x);
  assert.equal(y.dataId, x.dataId, "the clone is the same data");
  x.dispose();
  assert.deepEqual([...y.dataSync()], [1, 2, 3]);
  y.dispose();
});

test("OpenBLAS loads wherever the system has it, single-threaded, and the backend's line names it", async () => {
  const status = selectBlas("auto");
  if (!systemHasOpenBlas) {
    assert.match(status.why, /no OpenBLAS found|koffi/);
    return;
  }
  assert.ok(status.blas, `the system has libopenblas.so.0, but: ${status.why}`);
  assert.match(status.blas.config, /OpenBLAS/, "the library describes itself");
  assert.equal(status.blas.threads(), 1, "one BLAS thread per calling thread (reproducible numbers)");
  const info = await initBackend("wasm");
  const line = describeBackend({ ...info, blas: { library: status.blas.library, config: status.blas.config, threads: 1 } });
  assert.match(line, /^backend: wasm \(.*\), matmul on OpenBLAS .*\(libopenblas\.so\.0, 1 thread\)$/);
});

test(
  "a LoRA run trains alike on XNNPACK and OpenBLAS (losses to 1e-5 relative)",
  { skip: !openBlas && "no OpenBLAS on this system" },
  async () => {
    const losses: number[][] = [];
    const r = new Random(9);
    const data = Array.from({ length: 12 }, () => ({ inputIds: Array.from({ length: 24 }, () => r.int(1024)) }));
    for (const setting of ["off", "auto"]) {
      selectBlas(setting);
      const { model } = await loadModel("tiny-moby");
      const trainable = new LoraTrainable(PeftModel.create(model, { r: 4, targets: ["q_proj", "v_proj", "down_proj"] }, { seed: 3 }));
      const trainer = new Trainer(trainable, data, { batchSize: 4, maxSteps: 4, lr: 1e-3, seed: 1, workers: 1 });
      const { value: result, calls } = await countingSgemm(() => trainer.train());
      assert.equal(calls > 0, setting === "auto", `sgemm calls on ${setting}: ${calls}`);
      losses.push(result.history.map((s) => s.loss));
      trainer.dispose();
      trainable.parameterRoot.dispose();
    }
    const [xnnpack, blas] = losses as [number[], number[]];
    assert.equal(blas.length, 4);
    blas.forEach((loss, i) => assert.ok(Math.abs(loss - xnnpack[i]!) <= 1e-5 * xnnpack[i]!, `step ${i + 1}: ${loss} vs ${xnnpack[i]}`));
    assert.ok(blas[3]! < blas[0]!, `the loss falls: ${blas.join(", ")}`);
  },
);

test("LORALAB_BLAS=off keeps the matmul on XNNPACK; a library that is not a BLAS is an error naming the setting", () => {
  assert.deepEqual(selectBlas("off"), { blas: undefined, why: "LORALAB_BLAS=off" });
  assert.equal(activeBlas(), undefined);
  assert.throws(
    () => selectBlas("libz.so.1"),
    /^UserError: LORALAB_BLAS: cannot use "libz\.so\.1" as the BLAS: .*cblas_sgemm.*; expected a CBLAS library exporting cblas_sgemm/,
  );
  assert.throws(() => selectBlas("/nonexistent/libblas.so"), /LORALAB_BLAS: cannot use "\/nonexistent\/libblas\.so" as the BLAS/);
  selectBlas();
});
