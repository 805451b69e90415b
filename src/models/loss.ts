/**
 * transformers' causal-LM loss: token t predicts token t+1 (logits[:, :-1] against labels[:, 1:]),
 * labels of -100 are ignored, and the loss is the mean NLL over the remaining tokens.
 */
import { IGNORE_TARGET, sparseCrossEntropy, tf, viewAs } from "../backend/index.js";

export const IGNORE_INDEX = IGNORE_TARGET;

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
    // Row (b, t) predicts labels[b, t+1]; the last position of each row predicts nothing. Kept as [B, T]
    // so the logits are used as they are (no slice, which would copy them).
    const next = labels.slice([0, 1], [b, t - 1]).toInt();
    const targets = tf.concat([next, tf.fill([b, 1], IGNORE_INDEX, "int32")], 1).reshape([b * t]) as tf.Tensor1D;
    const rows = viewAs(logits, [b * t, v]) as tf.Tensor2D;
    // One logits-sized tensor in the forward pass (the logits) and one in the backward (their gradient).
    const nll = sparseCrossEntropy(rows, targets).reshape([b, t]);
    return {
      nll: nll.slice([0, 0], [b, t - 1]) as tf.Tensor2D,
      mask: next.notEqual(IGNORE_INDEX).toFloat() as tf.Tensor2D,
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
