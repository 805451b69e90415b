/**
 * Differentiable fused operations of a decoder (kernels in fused-kernels.ts), each falling back to the
 * same computation in tfjs ops on a backend without the kernels. What each keeps for the backward pass
 * is the least its gradient needs; see fused-kernels.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { IGNORE_TARGET, KERNELS } from "./fused-kernels.js";

const hasKernel = (name: string) => tf.getKernel(name, tf.getBackend()) !== undefined;

function run(name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(name, inputs, attrs);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

/** A differentiable op of `inputs` (the tensors it is differentiated by); `f` gets `save` as its last argument. */
function op<T extends tf.Tensor>(
  f: (...args: never[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
) {
  return tf.customGrad(f as never) as unknown as (...inputs: tf.Tensor[]) => T;
}

/**
 * `x` with another shape, sharing its data. tfjs's reshape keeps x for its gradient (to read its shape),
 * which keeps the data alive through the backward pass; this keeps only the shape.
 */
export function viewAs(x: tf.Tensor, shape: number[]): tf.Tensor {
  const view = op((input: tf.Tensor) => ({ value: tf.reshape(input, shape), gradFunc: (dy) => tf.reshape(dy, input.shape) }));
  return view(x);
}

/** a + b for tensors of one shape. tfjs's Add keeps both inputs for its gradient (to undo broadcasting); this keeps nothing. */
export function addSameShape(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return a.add(b);
  const add = op((x: tf.Tensor, y: tf.Tensor) => ({ value: tf.add(x, y), gradFunc: (dy) => [dy, dy] }));
  return add(a, b);
}

/**
 * x ⊙ c for a c that is not differentiated (a scale, a dropout mask; a scalar or x's shape). tfjs's Multiply keeps
 * x for c's gradient, which nobody wants here; this keeps c only. The same numbers both ways.
 */
export function mulByConstant(x: tf.Tensor, c: tf.Tensor | number): tf.Tensor {
  if (typeof c === "number") {
    const scale = op((input: tf.Tensor) => ({ value: tf.mul(input, c), gradFunc: (dy) => tf.mul(dy, c) }));
    return scale(x);
  }
  // A tensor is saved (the tape keeps it past the tidy that made it); a closure would see it disposed.
  const mask = op((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([c]);
    return { value: tf.mul(input, c), gradFunc: (dy, [saved]) => tf.mul(dy, saved!) };
  });
  return mask(x);
}

/**
 * x·wᵀ for a weight that does not train: the gradient flows to x only (dy·w), so nothing is kept for it
 * but the weight itself, where tfjs's matMul would keep x too.
 */
export function matMulFrozenTransposed(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const product = op<tf.Tensor2D>((input: tf.Tensor) => ({
    value: tf.matMul(input, w, false, true),
    gradFunc: (dy) => tf.matMul(dy, w),
  }));
  return product(x);
}

/** Llama's RMSNorm over the last axis: w ⊙ x / √(mean(x²) + eps). */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  if (!hasKernel(KERNELS.rmsNorm)) return x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(w);
  const norm = op((x2: tf.Tensor, weight: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, rstd] = run(KERNELS.rmsNorm, { x: x2, w: weight }, { eps });
    save([x2, weight, rstd!]);
    return {
      value: y!,
      gradFunc: (dy, [sx, sw, sr]) => run(KERNELS.rmsNormGrad, { x: sx!, w: sw!, rstd: sr!, dy }),
    };
  });
  return tf.tidy(() => viewAs(norm(viewAs(x, [-1, x.shape[x.shape.length - 1]!]), w), x.shape));
}

/** (x₁, x₂) → (−x₂, x₁) on the last axis. */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1);
  return tf.concat([x2!.neg(), x1!], -1);
}

/** Rotary embedding of x [..., T, D] by tables [T, D] (transformers' rotate_half convention). */
export function rotary(x: tf.Tensor, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor {
  if (!hasKernel(KERNELS.rotary)) return x.mul(cos).add(rotateHalf(x).mul(sin));
  const rotate = op((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([cos, sin]);
    return {
      value: run(KERNELS.rotary, { x: input, cos, sin }, { sign: 1 })[0]!,
      // A rotation's gradient is the inverse rotation.
      gradFunc: (dy, [c, s]) => run(KERNELS.rotary, { x: dy, cos: c!, sin: s! }, { sign: -1 })[0]!,
    };
  });
  return rotate(x);
}

/** silu(gate) ⊙ up (Llama's MLP). */
export function swiGlu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (!hasKernel(KERNELS.swiGlu)) return gate.mul(tf.sigmoid(gate)).mul(up);
  const glu = op((g: tf.Tensor, u: tf.Tensor, save: tf.GradSaveFunc) => {
    save([g, u]);
    return {
      value: run(KERNELS.swiGlu, { gate: g, up: u })[0]!,
      gradFunc: (dy, [sg, su]) => run(KERNELS.swiGluGrad, { gate: sg!, up: su!, dy }),
    };
  });
  return glu(gate, up);
}

/**
 * softmax(scale · q kᵀ + bias) v for q [B, H, T, D], k and v [B, H, S, D], bias [B, 1, T, S] (a constant).
 * It keeps q, k and v for the backward pass but not the [B, H, T, S] probabilities, which the backward pass
 * computes again by the same kernels from the same inputs, so the same bits: one more q kᵀ per layer (≈ 2 %
 * of a training step of `small`) instead of holding B·H·T·S floats per layer (8 MB each on `small`).
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor4D, scale: number): tf.Tensor4D {
  const [b, , t] = q.shape;
  const s = k.shape[2];
  const fused =
    hasKernel(KERNELS.maskedSoftmax) && bias.shape[0] === b && bias.shape[1] === 1 && bias.shape[2] === t && bias.shape[3] === s;
  // The fused kernels where they run, else tfjs ops (and their gradient's arithmetic): the same memory either way.
  const probabilities = (qs: tf.Tensor, ks: tf.Tensor, mask: tf.Tensor) =>
    tf.tidy(() => {
      const scores = tf.matMul(qs, ks, false, true); // [B, H, T, S]
      return fused ? run(KERNELS.maskedSoftmax, { scores, bias: mask }, { scale })[0]! : tf.softmax(scores.mul(scale).add(mask));
    });
  const softmaxGrad = (p: tf.Tensor, dp: tf.Tensor) => {
    if (fused) return run(KERNELS.maskedSoftmaxGrad, { p, dy: dp }, { scale })[0]!;
    const pdp = p.mul(dp);
    return pdp.sub(pdp.sum(-1, true).mul(p)).mul(scale);
  };
  const attend = op<tf.Tensor4D>((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([qi, ki, vi, bias]);
    const p = probabilities(qi, ki, bias);
    const value = tf.matMul(p, vi); // [B, H, T, D]
    p.dispose();
    return {
      value,
      // The gradients of tfjs's two BatchMatMuls and the softmax, in their order; each [B, H, T, S] goes once read.
      gradFunc: (dy, [sq, sk, sv, sb]) =>
        tf.tidy(() => {
          const p = probabilities(sq!, sk!, sb!);
          const dv = tf.matMul(p, dy, true, false); // [B, H, S, D]
          const dp = tf.matMul(dy, sv!, false, true); // [B, H, T, S]
          const dScores = softmaxGrad(p, dp);
          tf.dispose([p, dp]);
          return [tf.matMul(dScores, sk!), tf.matMul(dScores, sq!, true, false), dv];
        }),
    };
  });
  return attend(q, k, v);
}

/** NLL of each row of logits [N, V] at its target [N] (0 where the target is IGNORE_TARGET). */
export function sparseCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  if (!hasKernel(KERNELS.crossEntropy)) {
    const [n, v] = logits.shape;
    const counted = targets.notEqual(IGNORE_TARGET);
    const safeTargets = tf.where(counted, targets, tf.zerosLike(targets));
    const logProbs = tf.logSoftmax(logits).reshape([n * v]);
    const picked = tf.gather(logProbs, tf.range(0, n, 1, "int32").mul(tf.scalar(v, "int32")).add(safeTargets));
    return picked.neg().mul(counted.toFloat());
  }
  const crossEntropy = op<tf.Tensor1D>((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const [nll, lse] = run(KERNELS.crossEntropy, { logits: x, targets });
    save([x, targets, lse!]);
    return {
      value: nll!,
      gradFunc: (dy, [sx, st, sl]) => run(KERNELS.crossEntropyGrad, { logits: sx!, targets: st!, lse: sl!, dy })[0]!,
    };
  });
  return crossEntropy(logits);
}
