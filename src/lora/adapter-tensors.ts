/**
 * The tensors of one adapter in PEFT's adapter_model.safetensors, derived from its config: what saving
 * writes and exactly what loading accepts. Keys are `base_model.model.<module path>.…` without the
 * adapter's name, as PEFT's get_peft_model_state_dict writes them:
 *   lora_A.weight, lora_B.weight      every target module (required)
 *   lora_magnitude_vector             every target module when use_dora (required)
 *   <parameter path>                  the modules_to_save copies (optional: absent = the base values)
 *   <…>.bias                          bias "all": any bias; "lora_only": the target modules' (optional)
 * Nothing else: an adapter file must not change the base model beyond what its config allows.
 */
import type { tf } from "../backend/index.js";
import { parseAdapterParameter } from "./layer.js";
import type { PeftModel } from "./peft-model.js";

export const PEFT_PREFIX = "base_model.model.";

export interface AdapterTensor {
  /** The key PEFT writes. */
  readonly key: string;
  /** Keys other PEFT versions wrote for the same tensor. */
  readonly aliases: readonly string[];
  readonly required: boolean;
  readonly shape: readonly number[];
  read(): tf.Tensor;
  write(value: tf.Tensor): void;
}

const assignTo = (p: tf.Variable) => (value: tf.Tensor) => p.assign(value);

/** Every tensor adapter `name` of `peft` saves, and the only ones it may load. */
export function adapterTensors(peft: PeftModel, name: string): AdapterTensor[] {
  const info = peft.adapters.get(name);
  if (!info) throw new Error(`no adapter "${name}"`);
  const out: AdapterTensor[] = [];
  const saved = new Set(peft.modulesToSave.parameters(name));
  const targets = new Set(info.modules);
  const bias = info.config.bias;
  for (const [param, p] of peft.base.namedParameters()) {
    const lora = parseAdapterParameter(param);
    if (lora) {
      if (lora.adapter !== name) continue;
      const key = `${PEFT_PREFIX}${lora.module}.${lora.kind}`;
      const magnitude = lora.kind === "lora_magnitude_vector";
      out.push({
        key: magnitude ? key : `${key}.weight`,
        aliases: magnitude ? [`${key}.weight`] : [],
        required: true,
        shape: p.shape,
        read: () => p,
        write: assignTo(p),
      });
    } else if (saved.has(param)) {
      const m = peft.modulesToSave;
      out.push({
        key: `${PEFT_PREFIX}${param}`,
        aliases: [],
        required: false,
        shape: p.shape,
        read: () => m.value(name, param),
        write: (value) => m.assign(name, param, value),
      });
    } else if (param.endsWith(".bias") && bias !== "none") {
      // A wrapped layer's bias sits in its base_layer; the key says so when this adapter wraps the layer.
      const module = param.slice(0, -".bias".length).replace(/\.base_layer$/, "");
      if (bias === "lora_only" && !targets.has(module)) continue;
      const [key, alias] = targets.has(module)
        ? [`${module}.base_layer.bias`, `${module}.bias`]
        : [`${module}.bias`, `${module}.base_layer.bias`];
      out.push({
        key: PEFT_PREFIX + key,
        aliases: [PEFT_PREFIX + alias],
        required: false,
        shape: p.shape,
        read: () => p,
        write: assignTo(p),
      });
    }
  }
  return out;
}
