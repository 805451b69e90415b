/**
 * BatchMatMul for tfjs-backend-wasm through a fast path: a native BLAS's sgemm where one is loaded (blas.ts), on
 * views of the heap (transposes are sgemm's flags, batches its offsets: no copies), else XNNPACK as below.
 *
 * tfjs-wasm multiplies on XNNPACK only a single [M, K]·[K, N] product without transposes; anything batched
 * or transposed goes to a scalar loop (≈2 GFLOP/s against ≈30). This kernel brings every product to that
 * form: a transposed operand is transposed once into scratch memory, a right operand without batch is
 * multiplied with all of the left's batches at once ([B·M, K]·[K, N]), and batched products run once per
 * batch on views of the inputs and the output (no copies).
 *
 * XNNPACK packs the right operand when it first sees its id and keeps the packed copy until the id is
 * disposed. The right operand is therefore passed as a view with an id of its own, released after the
 * call (packing costs little next to a product of many rows), except for frozen weights used transposed
 * (x·Wᵀ in every linear layer, also when generating one token at a time): their transpose is made once,
 * packed, and its buffer freed at once; the packed copy, the only one kept, serves every later call until
 * W's data is disposed (e.g. by `assign` in a merge or an optimizer step).
 */
import * as tf from "@tensorflow/tfjs";
import { activeBlas, type Blas } from "./blas.js";
import { Heap, type HeapTensor, shapeBytes, type WasmBackend } from "./wasm-heap.js";

type DataId = object;

interface Exports {
  matMul(
    aId: number,
    aShape: Uint8Array,
    aRank: number,
    bId: number,
    bShape: Uint8Array,
    bRank: number,
    ta: number,
    tb: number,
    outId: number,
  ): void;
  transpose(xId: number, xShape: Uint8Array, rank: number, dtype: number, outId: number, perm: Uint8Array, permLength: number): void;
}

const exportsOf = new WeakMap<WasmBackend, Exports>();

function exported(backend: WasmBackend): Exports {
  let e = exportsOf.get(backend);
  if (!e) {
    const cwrap = backend.wasm.cwrap.bind(backend.wasm);
    e = {
      matMul: cwrap("BatchMatMul", null, ["number", "array", "number", "number", "array", "number", "number", "number", "number"]),
      transpose: cwrap("Transpose", null, ["number", "array", "number", "number", "number", "array", "number"]),
    };
    exportsOf.set(backend, e);
    watchDisposals(backend);
  }
  return e;
}

/** Data of frozen weights whose transpose may be kept (packed) across calls; see `keepTransposed`. */
const frozen = new WeakSet<DataId>();
/** Ids of kept transposes, by the weight's data; their buffers are freed, XNNPACK holds them packed. */
const packedTransposes = new Map<DataId, number>();

/**
 * Lets the wasm matmul keep `w`ᵀ (as XNNPACK's packed weights) while `w`'s data lives, for products
 * x·wᵀ. For weights that do not change between calls; a new value (`assign`) is new data, and the kept
 * transpose of the old one is freed with it.
 */
export function keepTransposed(w: tf.Tensor): void {
  frozen.add(w.dataId);
}

/** How many kept transposes exist (each frees with its weight's data). */
export function keptTransposeCount(): number {
  return packedTransposes.size;
}

function watchDisposals(backend: WasmBackend): void {
  const disposeData = backend.disposeData.bind(backend);
  backend.disposeData = (dataId: DataId, force?: boolean) => {
    const released = disposeData(dataId, force);
    const kept = packedTransposes.get(dataId);
    if (released && kept !== undefined) {
      backend.wasm.tfjs.disposeData(kept); // deletes the XNNPACK operator holding the packed copy
      packedTransposes.delete(dataId);
    }
    return released;
  };
}

const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

/** [batch, rows, cols] of `x` transposed in its last two axes, as new memory: [batch, cols, rows]. */
function transposed(heap: Heap, e: Exports, x: tf.TensorInfo, batch: number, rows: number, cols: number): HeapTensor {
  const out = heap.alloc(batch * rows * cols);
  const shape = batch === 1 ? [rows, cols] : [batch, rows, cols];
  const perm = batch === 1 ? [1, 0] : [0, 2, 1];
  e.transpose(heap.of(x).id, shapeBytes(shape), shape.length, 0, out.id, shapeBytes(perm), perm.length);
  return out;
}

/** op(A)·op(B) for [batch…, M, K]·[batch…, K, N] with the batch sizes of each side (1: broadcast). */
interface Product {
  batch: number;
  batchA: number;
  batchB: number;
  m: number;
  k: number;
  n: number;
  transposeA: boolean;
  transposeB: boolean;
}

/** The product on a native sgemm: one call for a right operand without batch (its rows stacked), else one per batch. */
function onBlas(blas: Blas, heap: Heap, a: tf.TensorInfo, b: tf.TensorInfo, out: tf.TensorInfo, p: Product): void {
  const { batch, batchA, batchB, m, k, n, transposeA, transposeB } = p;
  const [left, right, target] = [
    heap.floats(heap.of(a).offset, batchA * m * k),
    heap.floats(heap.of(b).offset, batchB * k * n),
    heap.floats(heap.of(out).offset, batch * m * n),
  ];
  const [lda, ldb] = [transposeA ? m : k, transposeB ? k : n];
  if (batchB === 1 && !transposeA) {
    blas.sgemm(false, transposeB, batchA * m, n, k, left, lda, right, ldb, target, n);
    return;
  }
  const part = (x: Float32Array, count: number, i: number, size: number) => (count === 1 ? x : x.subarray(i * size, (i + 1) * size));
  for (let i = 0; i < batch; i++) {
    blas.sgemm(
      transposeA,
      transposeB,
      m,
      n,
      k,
      part(left, batchA, i, m * k),
      lda,
      part(right, batchB, i, k * n),
      ldb,
      part(target, batch, i, m * n),
      n,
    );
  }
}

interface MatMulArgs {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  attrs: { transposeA: boolean; transposeB: boolean };
  backend: unknown;
}

export function fastBatchMatMul(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: MatMulArgs) => {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = args.attrs;
    const backend = args.backend as WasmBackend;
    if (a.dtype !== "float32" || b.dtype !== "float32") return fallback(args as never);
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
    const [batchA, batchB, batch] = [size(outerA), size(outerB), size(outer)];
    // Broadcasts other than "both the same" or "one side without batch" stay with tfjs.
    if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return fallback(args as never);
    const [ra, ca] = a.shape.slice(-2) as [number, number];
    const [rb, cb] = b.shape.slice(-2) as [number, number];
    const [m, k] = transposeA ? [ca, ra] : [ra, ca];
    const [kb, n] = transposeB ? [cb, rb] : [rb, cb];
    if (k !== kb) {
      throw new Error(
        `matMul: inner dimensions ${k} and ${kb} of shapes [${a.shape}] and [${b.shape}] differ (transposeA=${transposeA}, transposeB=${transposeB})`,
      );
    }
    const out = backend.makeOutput([...outer, m, n], "float32");
    if (batch * m * n === 0) return out;
    const heap = new Heap(backend);
    const target = heap.of(out);
    if (k === 0) {
      heap.floats(target.offset, batch * m * n).fill(0);
      return out;
    }
    const blas = activeBlas();
    if (blas) {
      onBlas(blas, heap, a, b, out, { batch, batchA, batchB, m, k, n, transposeA, transposeB });
      return out;
    }
    const e = exported(backend);
    const left = transposeA ? transposed(heap, e, a, batchA, k, m) : heap.of(a);
    const keep = transposeB && batchB === 1 && frozen.has(b.dataId);
    const kept = keep ? packedTransposes.get(b.dataId) : undefined;
    const right =
      kept !== undefined
        ? { id: kept, offset: 0, kind: "tfjs" as const }
        : transposeB
          ? transposed(heap, e, b, batchB, n, k)
          : heap.view(heap.of(b).offset, batchB * k * n);
    try {
      if (batchB === 1) {
        e.matMul(left.id, shapeBytes([1, batchA * m, k]), 3, right.id, shapeBytes([1, k, n]), 3, 0, 0, target.id);
      } else {
        for (let i = 0; i < batch; i++) {
          const views = [
            heap.view(left.offset + (batchA === 1 ? 0 : i * m * k * 4), m * k),
            heap.view(right.offset + i * k * n * 4, k * n),
            heap.view(target.offset + i * m * n * 4, m * n),
          ] as const;
          e.matMul(views[0].id, shapeBytes([1, m, k]), 3, views[1].id, shapeBytes([1, k, n]), 3, 0, 0, views[2].id);
          for (const v of views) heap.release(v);
        }
      }
    } finally {
      heap.release(left);
      if (keep && kept === undefined) {
        // XNNPACK has packed the transpose under its id: keep the id, free the buffer.
        packedTransposes.set(b.dataId, right.id);
        backend.wasm._free(right.offset);
      } else heap.release(right);
    }
    return out;
  }) as unknown as tf.KernelFunc;
}
