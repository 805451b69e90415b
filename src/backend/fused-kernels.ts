/**
 * The fused kernels of a decoder's training step, each a forward and a backward host kernel (one pass,
 * one output each; sums in float64). fused-ops.ts wraps them as differentiable ops. On wasm their passes run
 * as WebAssembly SIMD (simd-kernels.wat, `io.simd`); the JavaScript loops are the cpu backend's, and wasm's
 * with LORALAB_SIMD=off.
 *
 *   RMSNorm         y = w ⊙ x / √(mean(x²) + ε)                 saves x and 1/√(…) per row
 *   rotary          y = x ⊙ cos + rotate_half(x) ⊙ sin          saves nothing (its gradient is the inverse rotation)
 *   SwiGLU          y = silu(gate) ⊙ up                         saves gate and up
 *   masked softmax  p = softmax(scale · s + bias)               saves p
 *   cross-entropy   nll = logsumexp(z) − z[target]               saves z and logsumexp per row
 */
import type * as tf from "@tensorflow/tfjs";
import { type HostBackendName, type HostKernel, type Io, registerHostKernel } from "./host-kernels.js";
import type { SimdKernels } from "./simd-kernels.js";

export const IGNORE_TARGET = -100;

export const KERNELS = {
  rmsNorm: "LoralabRmsNorm",
  rmsNormGrad: "LoralabRmsNormGrad",
  rotary: "LoralabRotary",
  swiGlu: "LoralabSwiGlu",
  swiGluGrad: "LoralabSwiGluGrad",
  maskedSoftmax: "LoralabMaskedSoftmax",
  maskedSoftmaxGrad: "LoralabMaskedSoftmaxGrad",
  crossEntropy: "LoralabSparseCrossEntropy",
  crossEntropyGrad: "LoralabSparseCrossEntropyGrad",
} as const;

const width = (t: tf.TensorInfo) => t.shape[t.shape.length - 1]!;

/** x [N, C], w [C] → y [N, C], rstd [N] */
const rmsNorm: HostKernel = (io, { x, w }, { eps }) => {
  const c = width(x!);
  const rows = x!.shape.slice(0, -1).reduce((p, d) => p * d, 1);
  const [y, rstd] = [io.output(x!.shape), io.output([rows])];
  if (io.simd) {
    io.simd.rmsNorm(io.offset(x!), io.offset(w!), io.offset(y), io.offset(rstd), rows, c, eps as number);
    return [y, rstd];
  }
  const [xs, ws, ys, rs] = [io.read(x!), io.read(w!), io.read(y), io.read(rstd)];
  for (let r = 0; r < rows; r++) {
    const base = r * c;
    let squares = 0;
    for (let i = base; i < base + c; i++) squares += xs[i]! * xs[i]!;
    const scale = 1 / Math.sqrt(squares / c + (eps as number));
    rs[r] = scale;
    for (let i = 0; i < c; i++) ys[base + i] = xs[base + i]! * scale * ws[i]!;
  }
  return [y, rstd];
};

/** x, w, rstd, dy → dx = rstd · (g − x̂ · mean(g ⊙ x̂)), dw = Σ dy ⊙ x̂, with g = dy ⊙ w and x̂ = x · rstd */
const rmsNormGrad: HostKernel = (io, { x, w, rstd, dy }) => {
  const c = width(x!);
  const rows = rstd!.shape[0]!;
  const [dx, dw] = [io.output(x!.shape), io.output([c])];
  if (io.simd) {
    const sums = io.output([2 * c]); // c float64s
    io.simd.rmsNormGrad(
      io.offset(x!),
      io.offset(w!),
      io.offset(rstd!),
      io.offset(dy!),
      io.offset(dx),
      io.offset(dw),
      io.offset(sums),
      rows,
      c,
    );
    io.free(sums);
    return [dx, dw];
  }
  const [xs, ws, rs, dys, dxs, dws] = [io.read(x!), io.read(w!), io.read(rstd!), io.read(dy!), io.read(dx), io.read(dw)];
  const dwSums = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    const [base, scale] = [r * c, rs[r]!];
    let dot = 0;
    for (let i = 0; i < c; i++) {
      const normed = xs[base + i]! * scale;
      dot += dys[base + i]! * ws[i]! * normed;
      dwSums[i] += dys[base + i]! * normed;
    }
    const mean = dot / c;
    for (let i = 0; i < c; i++) dxs[base + i] = scale * (dys[base + i]! * ws[i]! - xs[base + i]! * scale * mean);
  }
  dws.set(dwSums);
  return [dx, dw];
};

/** x [..., T, D], cos and sin [T, D] (each angle twice: halves alike) → x ⊙ cos + sign · rotate_half(x) ⊙ sin */
const rotary: HostKernel = (io, { x, cos, sin }, { sign }) => {
  const [t, d] = cos!.shape as [number, number];
  const half = d / 2;
  const y = io.output(x!.shape);
  if (io.simd) {
    const rows = x!.shape.reduce((p, n) => p * n, 1) / d;
    io.simd.rotary(io.offset(x!), io.offset(cos!), io.offset(sin!), io.offset(y), rows, t, d, sign as number);
    return y;
  }
  const [xs, cs, ss, ys] = [io.read(x!), io.read(cos!), io.read(sin!), io.read(y)];
  const s = sign as number;
  for (let row = 0, base = 0; base < xs.length; row++, base += d) {
    const table = (row % t) * d;
    for (let i = 0; i < half; i++) {
      const a = xs[base + i]!;
      const b = xs[base + i + half]!;
      ys[base + i] = a * cs[table + i]! - s * b * ss[table + i]!;
      ys[base + i + half] = b * cs[table + i + half]! + s * a * ss[table + i + half]!;
    }
  }
  return y;
};

/** gate, up → silu(gate) ⊙ up */
const swiGlu: HostKernel = (io, { gate, up }) => {
  if (io.simd) {
    const y = io.output(gate!.shape);
    io.simd.swiGlu(
      io.offset(gate!),
      io.offset(up!),
      io.offset(y),
      y.shape.reduce((p, d) => p * d, 1),
    );
    return y;
  }
  const [y, sig] = [io.output(gate!.shape), io.sigmoid(gate!)];
  const [gs, us, ss, ys] = [io.read(gate!), io.read(up!), io.read(sig), io.read(y)];
  for (let i = 0; i < gs.length; i++) ys[i] = gs[i]! * ss[i]! * us[i]!;
  io.free(sig);
  return y;
};

/** gate, up, dy → dgate = dy ⊙ up ⊙ σ(1 + gate(1 − σ)), dup = dy ⊙ gate ⊙ σ */
const swiGluGrad: HostKernel = (io, { gate, up, dy }) => {
  if (io.simd) {
    const [dgate, dup] = [io.output(gate!.shape), io.output(gate!.shape)];
    const n = gate!.shape.reduce((p, d) => p * d, 1);
    io.simd.swiGluGrad(io.offset(gate!), io.offset(up!), io.offset(dy!), io.offset(dgate), io.offset(dup), n);
    return [dgate, dup];
  }
  const [dgate, dup, sig] = [io.output(gate!.shape), io.output(gate!.shape), io.sigmoid(gate!)];
  const [gs, us, dys, ss, dgs, dus] = [io.read(gate!), io.read(up!), io.read(dy!), io.read(sig), io.read(dgate), io.read(dup)];
  for (let i = 0; i < gs.length; i++) {
    const g = gs[i]!;
    const s = ss[i]!;
    dgs[i] = dys[i]! * us[i]! * s * (1 + g * (1 - s));
    dus[i] = dys[i]! * g * s;
  }
  io.free(sig);
  return [dgate, dup];
};

/** z[from…] = k · x[from…] + b[biasFrom…] for `n` elements */
type ScaleAdd = (from: number, biasFrom: number, n: number, k: number) => void;

function jsScaleAdd(io: Io, x: tf.TensorInfo, b: tf.TensorInfo, z: tf.TensorInfo): ScaleAdd {
  const [xs, bs, zs] = [io.read(x), io.read(b), io.read(z)];
  return (from, biasFrom, n, k) => {
    for (let i = 0; i < n; i++) zs[from + i] = k * xs[from + i]! + bs[biasFrom + i]!;
  };
}

function simdScaleAdd(io: Io, simd: SimdKernels, x: tf.TensorInfo, b: tf.TensorInfo, z: tf.TensorInfo): ScaleAdd {
  const [xAt, bAt, zAt] = [io.offset(x), io.offset(b), io.offset(z)];
  return (from, biasFrom, n, k) => simd.scaleAdd(xAt + 4 * from, bAt + 4 * biasFrom, zAt + 4 * from, n, k);
}

/** scores [B, H, T, S], bias [B, 1, T, S] → softmax over S of scale · scores + bias */
const maskedSoftmax: HostKernel = (io, { scores, bias }, { scale }) => {
  const [b, h, t, s] = scores!.shape as [number, number, number, number];
  const z = io.output(scores!.shape);
  const k = scale as number;
  const scaleAdd = io.simd ? simdScaleAdd(io, io.simd, scores!, bias!, z) : jsScaleAdd(io, scores!, bias!, z);
  for (let batch = 0; batch < b; batch++) {
    for (let head = 0; head < h; head++) scaleAdd((batch * h + head) * t * s, batch * t * s, t * s, k);
  }
  const p = io.softmax(z);
  io.free(z);
  return p;
};

/** p, dy → scale · p ⊙ (dy − Σ dy ⊙ p) over the last axis */
const maskedSoftmaxGrad: HostKernel = (io, { p, dy }, { scale }) => {
  const s = width(p!);
  const dx = io.output(p!.shape);
  const k = scale as number;
  if (io.simd) {
    io.simd.softmaxGrad(io.offset(p!), io.offset(dy!), io.offset(dx), p!.shape.reduce((a, d) => a * d, 1) / s, s, k);
    return dx;
  }
  const [ps, dys, dxs] = [io.read(p!), io.read(dy!), io.read(dx)];
  for (let base = 0; base < ps.length; base += s) {
    let dot = 0;
    for (let i = base; i < base + s; i++) dot += dys[i]! * ps[i]!;
    for (let i = base; i < base + s; i++) dxs[i] = k * ps[i]! * (dys[i]! - dot);
  }
  return dx;
};

function checkTarget(target: number, vocab: number): void {
  if (target !== IGNORE_TARGET && (target < 0 || target >= vocab)) {
    throw new Error(`cross-entropy: target ${target} is outside the vocabulary (0…${vocab - 1})`);
  }
}

/** The log-sum-exp of row r of [N, V] logits. */
type RowLogSumExp = (r: number) => number;

function jsLogSumExp(zs: Float32Array, vocab: number): RowLogSumExp {
  return (r) => {
    const base = r * vocab;
    let max = -Infinity;
    for (let v = base; v < base + vocab; v++) if (zs[v]! > max) max = zs[v]!;
    let sum = 0;
    for (let v = base; v < base + vocab; v++) sum += Math.exp(zs[v]! - max);
    return max + Math.log(sum);
  };
}

function simdLogSumExp(simd: SimdKernels, logits: number, vocab: number): RowLogSumExp {
  return (r) => {
    const row = logits + 4 * r * vocab;
    const max = simd.rowMax(row, vocab);
    return max + Math.log(simd.expSum(row, vocab, max));
  };
}

/** logits [N, V], targets [N] → nll [N] (0 for IGNORE_TARGET), lse [N] */
const crossEntropy: HostKernel = (io, { logits, targets }) => {
  const [rows, vocab] = logits!.shape as [number, number];
  const [nll, lse] = [io.output([rows]), io.output([rows])];
  const [zs, ts, nlls, lses] = [io.read(logits!), io.readInt(targets!), io.read(nll), io.read(lse)];
  const logSumExpOf = io.simd ? simdLogSumExp(io.simd, io.offset(logits!), vocab) : jsLogSumExp(zs, vocab);
  for (let r = 0; r < rows; r++) {
    const base = r * vocab;
    const logSumExp = logSumExpOf(r);
    const target = ts[r]!;
    checkTarget(target, vocab);
    lses[r] = logSumExp;
    nlls[r] = target === IGNORE_TARGET ? 0 : logSumExp - zs[base + target]!;
  }
  return [nll, lse];
};

/** logits, targets, lse, dy → dlogits = dy · (softmax(logits) − onehot(target)), 0 on ignored rows */
const crossEntropyGrad: HostKernel = (io, { logits, targets, lse, dy }) => {
  const [rows, vocab] = logits!.shape as [number, number];
  const dz = io.output([rows, vocab]);
  const [zs, ts, lses, dys, dzs] = [io.read(logits!), io.readInt(targets!), io.read(lse!), io.read(dy!), io.read(dz)];
  for (let r = 0; r < rows; r++) {
    const [base, target] = [r * vocab, ts[r]!];
    if (target === IGNORE_TARGET) {
      dzs.fill(0, base, base + vocab);
      continue;
    }
    const [g, shift] = [dys[r]!, lses[r]!];
    if (io.simd) io.simd.scaledExp(io.offset(logits!) + 4 * base, io.offset(dz) + 4 * base, vocab, shift, g);
    else for (let v = base; v < base + vocab; v++) dzs[v] = g * Math.exp(zs[v]! - shift);
    dzs[base + target] = dzs[base + target]! - g;
  }
  return dz;
};

const ALL: Record<string, HostKernel> = {
  [KERNELS.rmsNorm]: rmsNorm,
  [KERNELS.rmsNormGrad]: rmsNormGrad,
  [KERNELS.rotary]: rotary,
  [KERNELS.swiGlu]: swiGlu,
  [KERNELS.swiGluGrad]: swiGluGrad,
  [KERNELS.maskedSoftmax]: maskedSoftmax,
  [KERNELS.maskedSoftmaxGrad]: maskedSoftmaxGrad,
  [KERNELS.crossEntropy]: crossEntropy,
  [KERNELS.crossEntropyGrad]: crossEntropyGrad,
};

export function registerFusedKernels(backendName: HostBackendName): void {
  for (const [name, kernel] of Object.entries(ALL)) registerHostKernel(name, backendName, kernel);
}
