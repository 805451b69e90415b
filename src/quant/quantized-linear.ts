/**
 * A frozen linear layer whose weight is stored compactly (NF4 or 16-bit, see frozen-weight.ts) and widened to
 * float32 for one matmul at a time: y = x Wᵀ + b, as torch.nn.Linear. This is the base layer of QLoRA: the gradient
 * flows to the input (so adapters upstream and around it train) but never to the weight, and the backward pass
 * widens W again instead of keeping the forward's copy — between steps only the compact bytes stay.
 */
import { tf } from "../backend/index.js";
import { type Linear, type LinearLike, matMulTransposed, onLastAxis } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { NF4Weight, weightTensor, type FrozenWeight } from "./frozen-weight.js";
import type { NF4Options } from "./nf4.js";

/**
 * How the checkpoint stores the weight: "linear" as torch.nn.Linear [out, in], "conv1d" as transformers' Conv1D
 * [in, out] (GPT-2). A QuantizedLinear always holds [out, in]; the layout says how to write it back and that PEFT
 * treats the layer as fan_in_fan_out.
 */
export type CheckpointLayout = "linear" | "conv1d";

export class QuantizedLinear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Kept in float32 and frozen, as QLoRA keeps biases. */
  readonly bias: tf.Variable | undefined;
  private readonly product: (x: tf.Tensor2D) => tf.Tensor2D;

  constructor(
    readonly weight: FrozenWeight,
    bias?: Float32Array,
    readonly layout: CheckpointLayout = "linear",
  ) {
    super();
    [this.outFeatures, this.inFeatures] = weight.shape;
    if (bias && bias.length !== this.outFeatures) {
      throw new RangeError(`QuantizedLinear: bias has ${bias.length} values, expected ${this.outFeatures}`);
    }
    this.addStoredWeight("weight", weight);
    this.bias = bias ? this.addParameter("bias", tf.tensor1d(bias)) : undefined;
    // x [N, in] → x Wᵀ [N, out]; d(x Wᵀ)/dx applied to dy is dy W [N, in]. W is rebuilt in each pass (tfjs
    // disposes the forward's intermediates, so nothing of it is saved for the backward).
    const product = (x: tf.Tensor2D) => ({
      value: matMulTransposed(x, weightTensor(this.weight)),
      gradFunc: (dy: tf.Tensor2D) => tf.tidy(() => tf.matMul(dy, weightTensor(this.weight))),
    });
    this.product = tf.customGrad(product as never) as (x: tf.Tensor2D) => tf.Tensor2D;
  }

  /** Quantizes a float32 Linear to NF4 (its bias stays float32). The Linear is left as it was. */
  static fromLinear(linear: Linear, options?: NF4Options): QuantizedLinear {
    const values = linear.weight.dataSync() as Float32Array;
    const weight = NF4Weight.quantize(values, [linear.outFeatures, linear.inFeatures], options);
    return new QuantizedLinear(weight, linear.bias ? (linear.bias.dataSync() as Float32Array) : undefined);
  }

  /** Bytes this layer holds: the compact weight plus the float32 bias. */
  get byteLength(): number {
    return this.weight.byteLength + (this.bias ? 4 * this.outFeatures : 0);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return onLastAxis(x, (x2) => {
      const y = this.product(x2);
      return this.bias ? y.add(this.bias) : y;
    });
  }
}
