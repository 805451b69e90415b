/**
 * A float32 copy of a model's base weights, whatever wraps or stores them: a LoRA layer's base layer stands for
 * the layer (its adapters are left out), a compact projection (NF4, 16-bit) is widened. What full fine-tuning
 * starts from and what a merged adapter is added to, so an NF4 base is never re-quantized.
 */
import { tf } from "../backend/index.js";
import { ensureFits } from "../backend/memory.js";
import type { CausalLM } from "../models/causal-lm.js";
import { createModel, type LoadedModel } from "../models/load.js";
import { weightMemory } from "../models/memory-estimate.js";
import { weightTensor } from "../quant/frozen-weight.js";
import { QuantizedLinear } from "../quant/quantized-linear.js";

const unwrap = (name: string) => name.replace(/\.base_layer(?=\.|$)/, "");

/** The copy is a whole float32 model: it must fit the backend before it is allocated. */
export function floatCopy(model: CausalLM, loaded: Pick<LoadedModel, "config" | "dir">): CausalLM {
  const need = [{ what: "float32 weights", bytes: weightMemory(loaded.config).backend }];
  ensureFits(`a float32 copy of ${loaded.dir}`, need, ["LoRA or QLoRA (base.lora(…), base.qlora(…)) instead of a float32 copy"]);
  const values = new Map<string, () => tf.Tensor>();
  for (const [name, p] of model.namedParameters()) values.set(unwrap(name), () => p);
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof QuantizedLinear)) continue;
    // weightTensor is [out, in]; GPT-2's Conv1D stores [in, out].
    values.set(`${unwrap(path)}.weight`, () => (m.layout === "conv1d" ? weightTensor(m.weight).transpose() : weightTensor(m.weight)));
  }
  const copy = createModel(loaded.config);
  for (const [name, p] of copy.namedParameters()) tf.tidy(() => p.assign(values.get(name)!()));
  return copy;
}
