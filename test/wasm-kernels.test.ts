/**
 * loralab's wasm kernels (src/backend/wasm-*.ts) against tfjs's own kernels on the cpu backend: matMul in
 * every layout the models use (2-D, batched, broadcast, each transpose) on both of its paths (a native BLAS
 * when the system has OpenBLAS, XNNPACK otherwise), its gradients (which are matmuls with transposes again),
 * the kept transposes of frozen weights, and the zero-copy Identity. And the choice of BLAS (LORALAB_BLAS).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { describeBackend, initBackend, tf } from "../src/backend/index.js";
import { activeBlas, selectBlas } from "../src/backend/blas.js";
import { matMulTransposed } from "../src/nn/layers.js";
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

/** Shapes of a and b for [batch…, M, K]·[batch…, K, N] with the transposes applied to the stored layout. */
function shapes(batchA: number[], batchB: number[], m: number, k: number, n: number, ta: boolean, tb: boolean): [number[], number[]] {
  return [
    [...batchA, ...(ta ? [k, m] : [m, k])],
    [...batchB, ...(tb ? [n, k] : [k, n])],
  ];
}

const LAYOUTS: { name: string; batchA: number[]; batchB: number[] }[] = [
  { name: "2-D", batchA: [], batchB: [] },
  { name: "batched 3-D", batchA: [3], batchB: [3] },
  { name: "batched 4-D (attention)", batchA: [2, 3], batchB: [2, 3] },
  { name: "3-D times 2-D", batchA: [4], batchB: [] },
  { name: "2-D times 3-D", batchA: [], batchB: [4] },
  { name: "broadcast batch of 1", batchA: [1, 3], batchB: [2, 3] },
];

const random = new Random(11);
for (const path of PATHS) {
  const skip = path.name === "OpenBLAS" && !openBlas ? "no OpenBLAS on this system (Debian: libopenblas0)" : false;
  const on_ = (backend: string, inputs: Operand[], f: (...xs: tf.Tensor[]) => tf.Tensor[]) => {
    if (backend === "wasm") selectBlas(path.setting);
    return on(backend, inputs, f);
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

      test(`${path.name}: matMul ${label} equals tfjs's cpu kernel`, { skip }, () => {
        const f = (a: tf.Tensor, b: tf.Tensor) => [tf.matMul(a, b, ta, tb)];
        assertClose(on_("wasm", inputs, f)[0]!, on("cpu", inputs, f)[0]!, label);
      });

      // Gradients only where tfjs defines them (it does not reduce over broadcast batch axes).
      if (layout.batchA.join() !== layout.batchB.join() && layout.batchA.length && layout.batchB.length) continue;
      if (layout.batchA.length !== layout.batchB.length) continue;
      test(`${path.name}: gradients of matMul ${label} equal tfjs's on cpu`, { skip }, () => {
        const [outShape] = shapes(layout.batchA, layout.batchB, m, 1, n, false, false);
        const weights = operand([...outShape.slice(0, -1), n], random);
        const f = (a: tf.Tensor, b: tf.Tensor, w: tf.Tensor) =>
          tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb).mul(w).sum())([a, b]);
        const [wasm, cpu] = [on_("wasm", [...inputs, weights], f), on("cpu", [...inputs, weights], f)];
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

test(
  "OpenBLAS is what the wasm backend's matmul runs on, and the backend's line says so",
  { skip: !openBlas && "no OpenBLAS on this system" },
  async () => {
    const status = selectBlas();
    assert.match(status.blas!.config, /OpenBLAS/, "the library describes itself");
    assert.ok(status.blas!.threads()! >= 1);
    const info = await initBackend("wasm");
    assert.match(describeBackend(info), /^backend: wasm \(.*\), matmul on OpenBLAS .*\(libopenblas\.so(\.0)?, \d+ threads?\)$/);
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
