/**
 * transformers' causal-LM loss: token t predicts token t+1 (logits[:, :-1] against labels[:, 1:]),
 * labels of -100 are ignored, and the loss is the mean NLL over the remaining tokens.
 */
import { tf } from "../backend/index.js";

export const IGNORE_INDEX = -100;

// A type alias (not an interface) so tf.tidy accepts it as a TensorContainer.
export type TokenLoss = {
  /** NLL of each predicted token [B, T−1], 0 where ignored. */
  nll: tf.Tensor2D;
  /** 1 where the label counts, 0 where ignored [B, T−1]. */
  mask: tf.Tensor2D;
};

/** logits [B, T, V], labels [B, T] → per-token NLL of the shifted targets. */
export function tokenNll(logits: tf.Tensor3D, labels: tf.Tensor2D): TokenLoss {
  return tf.tidy(() => {
    const [b, t, v] = logits.shape;
    const n = b * (t - 1);
    const predicting = logits.slice([0, 0, 0], [b, t - 1, v]).reshape([n, v]); // [N, V]
    const targets = labels
      .slice([0, 1], [b, t - 1])
      .reshape([n])
      .toInt(); // [N]
    const mask = targets.notEqual(IGNORE_INDEX).toFloat(); // [N]
    const safeTargets = tf.where(mask.cast("bool"), targets, tf.zerosLike(targets)); // [N]
    const logProbs = tf.logSoftmax(predicting).reshape([n * v]); // [N·V]
    const picked = tf.gather(logProbs, tf.range(0, n, 1, "int32").mul(tf.scalar(v, "int32")).add(safeTargets)); // [N]
    return {
      nll: picked
        .neg()
        .mul(mask)
        .reshape([b, t - 1]) as tf.Tensor2D,
      mask: mask.reshape([b, t - 1]) as tf.Tensor2D,
    };
  });
}

/** The mean over counted tokens as a scalar (what the optimizer minimises). */
export function causalLmLoss(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const { nll, mask } = tokenNll(logits, labels);
    return nll.sum().div(tf.maximum(mask.sum(), 1)) as tf.Scalar;
  });
}
