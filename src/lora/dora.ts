/**
 * DoRA, weight-decomposed LoRA, as a variant of the LoRA layer (PEFT's DoraLinearLayer): the adapted
 * weight W + s·BA is split into its direction and a learned magnitude m per output row,
 *
 *   W' = m · (W + s·BA) / ‖W + s·BA‖      (the norm per output row of the [out, in] weight)
 *
 * Its init, forward and merged delta live here; the LoRA layer calls them for adapters with use_dora.
 */
import { tf } from "../backend/index.js";
import { matMulTransposed } from "../nn/layers.js";
import { Module } from "../nn/module.js";

/** Identity forward, zero gradient: PEFT's DoRA treats the weight norm as a constant in backprop (it detaches it). */
const detach = tf.customGrad(((x: tf.Tensor) => ({ value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as never) as (
  x: tf.Tensor,
) => tf.Tensor;

/** ‖W + s·BA‖ per output row, for W and the update s·BA as [out, in]. */
function rowNorm(weight: tf.Tensor2D, update: tf.Tensor2D): tf.Tensor1D {
  return tf.norm(weight.add(update), "euclidean", 1) as tf.Tensor1D;
}

/** DoRA's learned magnitude per output row ([out]); held as `weight`, so its path is PEFT's `lora_magnitude_vector.<adapter>.weight`. */
export class DoraMagnitude extends Module {
  readonly weight: tf.Variable;

  constructor(initial: tf.Tensor1D) {
    super();
    this.weight = this.addParameter("weight", initial, true);
  }

  /** PEFT's DoRA init: m = ‖W + s·BA‖, so that a new DoRA adapter computes what plain LoRA with the same A and B computes. */
  static initial(weight: tf.Tensor2D, update: tf.Tensor2D): tf.Tensor1D {
    return rowNorm(weight, update);
  }

  /**
   * The adapter's part of the layer output for the (dropped-out) input x [..., in], given the plain LoRA
   * output lora = s·BAx: (m/‖W+s·BA‖ − 1)·Wx + (m/‖W+s·BA‖)·lora, the bias left out as in PEFT.
   */
  forward(x: tf.Tensor, weight: tf.Tensor2D, update: tf.Tensor2D, lora: tf.Tensor): tf.Tensor {
    const scale = this.weight.div(detach(rowNorm(weight, update))); // [out]
    const lead = x.shape.slice(0, -1);
    const baseOut = matMulTransposed(x.reshape([-1, weight.shape[1]]) as tf.Tensor2D, weight).reshape([...lead, weight.shape[0]]);
    return baseOut.mul(scale.sub(1)).add(lora.mul(scale));
  }

  /** What merging adds to W ([out, in]): m/‖W+s·BA‖ · (W + s·BA) − W. */
  mergedDelta(weight: tf.Tensor2D, update: tf.Tensor2D): tf.Tensor2D {
    const combined = weight.add(update);
    return combined.mul(this.weight.div(rowNorm(weight, update)).expandDims(1)).sub(weight);
  }
}
