/** The building blocks of the decoders, each holding weights under PyTorch's parameter names. */
import { keepTransposed, matMulFrozenTransposed, rmsNorm, tf, viewAs } from "../backend/index.js";
import { Module } from "./module.js";

/**
 * x Wᵀ for x [N, in], W [out, in]. A frozen weight's transpose is kept by the wasm matmul (packed, once)
 * instead of being made on every call, and its product keeps nothing for the backward pass but W (no
 * gradient for W is wanted); a weight that trains changes every step, so there is nothing to keep.
 */
export function matMulTransposed(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  if (!(w instanceof tf.Variable) || w.trainable) return tf.matMul(x, w, false, true);
  keepTransposed(w);
  return matMulFrozenTransposed(x, w);
}

/** Applies a 2-D op to the last axis of an [..., n] tensor. */
export function onLastAxis(x: tf.Tensor, f: (x2d: tf.Tensor2D) => tf.Tensor): tf.Tensor {
  const lead = x.shape.slice(0, -1);
  const y = f(viewAs(x, [-1, x.shape[x.shape.length - 1]!]) as tf.Tensor2D);
  return viewAs(y, [...lead, y.shape[1]!]);
}

/** Anything that maps [..., in] → [..., out] and can stand where a Linear stood (LoRA wraps these). */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor): tf.Tensor;
}

export function isLinearLike(m: Module): m is LinearLike {
  return "inFeatures" in m && "outFeatures" in m && typeof (m as Partial<LinearLike>).forward === "function";
}

/** Names of the linear layers below `root` (LoRA's candidate targets), e.g. "model.layers.0.self_attn.q_proj". */
export function linearModuleNames(root: Module): string[] {
  return [...root.namedModules()].filter(([, m]) => isLinearLike(m)).map(([name]) => name);
}

/** torch.nn.Linear: y = x Wᵀ + b, weight [out, in]. */
export class Linear extends Module implements LinearLike {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | undefined;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias: boolean,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.zeros([outFeatures, inFeatures]));
    this.bias = bias ? this.addParameter("bias", tf.zeros([outFeatures])) : undefined;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return onLastAxis(x, (x2) => {
      const y = matMulTransposed(x2, this.weight as tf.Tensor2D); // [N, out]
      return this.bias ? y.add(this.bias) : y;
    });
  }
}

/** transformers' Conv1D (GPT-2): a linear layer stored transposed, weight [in, out]: y = x W + b. */
export class Conv1D extends Module implements LinearLike {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.zeros([inFeatures, outFeatures]));
    this.bias = this.addParameter("bias", tf.zeros([outFeatures]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return onLastAxis(x, (x2) => tf.matMul(x2, this.weight as tf.Tensor2D).add(this.bias)); // [N, out]
  }
}

export class Embedding extends Module {
  readonly weight: tf.Variable;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.zeros([numEmbeddings, dim]));
  }

  /** ids [B, T] int32 → [B, T, dim] */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.weight, ids.toInt());
  }
}

/** RMSNorm (Llama): x / sqrt(mean(x²) + eps) · w */
export class RMSNorm extends Module {
  readonly weight: tf.Variable;

  constructor(
    readonly dim: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.ones([dim]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** LayerNorm (GPT-2): (x − mean) / sqrt(var + eps) · w + b, biased variance as torch. */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly dim: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.addParameter("weight", tf.ones([dim]));
    this.bias = this.addParameter("bias", tf.zeros([dim]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    const { mean, variance } = tf.moments(x, -1, true); // [..., 1] each
    return x
      .sub(mean)
      .mul(tf.rsqrt(variance.add(this.eps)))
      .mul(this.weight)
      .add(this.bias);
  }
}
