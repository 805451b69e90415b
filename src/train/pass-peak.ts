/**
 * The tensor memory a pass adds on top of the weights, as tf.profile measures it: what the coefficients of
 * models/memory-estimate.ts are fitted to (scripts/fit-memory-estimate.ts) and checked against (the tests).
 */
import { tf } from "../backend/index.js";
import { Random } from "../core/random.js";
import type { CausalLM } from "../models/causal-lm.js";
import { PASSES, passTerms, projectionElements, termsBytes, type PassKind, type PassTerms } from "../models/memory-estimate.js";
import { tokenNll } from "../models/loss.js";
import { PeftModel } from "../lora/peft-model.js";
import { ActivationCheckpointing } from "../nn/checkpointing.js";

/** A pass as the estimate names it, with activation checkpointing as a mode of its own. */
export type MeasuredPass = PassKind | "adapter-checkpointed";

export interface PassPeak {
  /** passBytes' estimate for the same pass, and the terms it prices. */
  estimate: number;
  terms: PassTerms;
  /** tf.profile's peak bytes minus the bytes alive before the pass. */
  measured: number;
}

/**
 * One pass of `mode` over seeded random ids [batch, seq]: a forward pass and its loss (inference), a LoRA step on
 * every linear layer (adapter), or a step that trains every weight (full). Leaves `model` as it was.
 */
export async function measurePassPeak(model: CausalLM, mode: MeasuredPass, batch: number, seq: number): Promise<PassPeak> {
  const random = new Random(1);
  const ids = tf.tensor2d(
    Array.from({ length: batch * seq }, () => random.int(model.config.vocabSize)),
    [batch, seq],
    "int32",
  );
  const checkpointing = mode === "adapter-checkpointed";
  const parameters = [...model.namedParameters()].map(([, p]) => p);
  const wasTrainable = parameters.map((p) => p.trainable); // before LoRA freezes the base
  const peft = mode.startsWith("adapter")
    ? PeftModel.create(model, { r: 8, targets: "all-linear" }, { adapterName: "measured" })
    : undefined;
  if (!peft) for (const p of parameters) p.trainable = mode === "full";
  const vars = peft ? peft.trainableParameters().map(([, p]) => p) : parameters;
  const forward = peft ?? model;
  const c = checkpointing ? new ActivationCheckpointing() : undefined;
  try {
    const start = tf.memory().numBytes;
    const kind: PassKind = peft ? "adapter" : (mode as PassKind);
    const terms = passTerms(model.config, { batch, seq }, { kind, checkpointing, ...projectionElements(forward) });
    const profile = await tf.profile(() => {
      if (mode === "inference") tf.dispose(tf.tidy(() => tokenNll(forward.forward(ids), ids)));
      else {
        const { value, grads } = tf.variableGrads(
          () => tf.tidy(() => tokenNll(forward.forward(ids, { checkpointing: c }), ids).nll.mean() as tf.Scalar),
          vars,
        );
        tf.dispose([value, ...Object.values(grads)]);
      }
      return [];
    });
    return { estimate: termsBytes(terms, PASSES[model.config.family][kind]), terms, measured: profile.peakBytes - start };
  } finally {
    c?.dispose();
    ids.dispose();
    peft?.deleteAdapter("measured");
    parameters.forEach((p, i) => (p.trainable = wasTrainable[i]!));
  }
}
