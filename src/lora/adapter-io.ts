/**
 * Adapters on disk in PEFT's format: adapter_config.json + adapter_model.safetensors with keys
 * `base_model.model.<module path>.lora_A.weight` (the adapter's name stripped, as PEFT saves them).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { readSafetensors, serializeSafetensors, type TensorToWrite } from "../checkpoint/safetensors.js";
import { writeDirectoryAtomic } from "../core/files.js";
import type { CausalLM } from "../models/causal-lm.js";
import { fromAdapterConfigJson, toAdapterConfigJson } from "./config.js";
import { PeftModel } from "./peft-model.js";
import { parseAdapterParameter } from "./layer.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const PREFIX = "base_model.model.";

/** Our parameter path → PEFT's saved key for adapter `name`, or undefined when it is not part of that adapter. */
function savedKey(param: string, name: string): string | undefined {
  const p = parseAdapterParameter(param);
  if (!p || p.adapter !== name) return undefined;
  return p.kind === "lora_magnitude_vector" ? `${PREFIX}${p.module}.lora_magnitude_vector` : `${PREFIX}${p.module}.${p.kind}.weight`;
}

/** Saved key → our parameter path for adapter `name`. */
function paramPath(key: string, name: string): string {
  const inner = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
  const lora = /^(.*)\.(lora_A|lora_B)\.weight$/.exec(inner);
  if (lora) return `${lora[1]}.${lora[2]}.${name}.weight`;
  const magnitude = /^(.*)\.lora_magnitude_vector(?:\.weight)?$/.exec(inner);
  if (magnitude) return `${magnitude[1]}.lora_magnitude_vector.${name}.weight`;
  return inner;
}

/** Writes adapter `name` as a PEFT adapter directory (atomically: the old directory stays until the new one is complete). */
export async function saveAdapter(model: PeftModel, dir: string, name = model.activeAdapters[0] ?? "default"): Promise<void> {
  const info = model.adapters.get(name);
  if (!info) throw new UserError(`no adapter "${name}" to save`);
  const tensors: Record<string, TensorToWrite> = {};
  const modules = new Map(model.modulesToSaveValues(name)); // stored under their plain names, as PEFT does
  for (const [param, p] of model.base.namedParameters()) {
    const key = savedKey(param, name);
    if (key) tensors[key] = { shape: p.shape, data: p.dataSync() as Float32Array };
    // Biases trained per the config's `bias` setting belong to the adapter too.
    else if (p.trainable && !modules.has(param) && model.activeAdapters.includes(name))
      tensors[`${PREFIX}${param}`] = { shape: p.shape, data: p.dataSync() as Float32Array };
  }
  for (const [param, t] of modules) tensors[`${PREFIX}${param}`] = { shape: t.shape, data: t.dataSync() as Float32Array };
  const config = toAdapterConfigJson(info.config, info.targets);
  await writeDirectoryAtomic(dir, {
    [ADAPTER_CONFIG]: `${JSON.stringify(config, null, 2)}\n`,
    [ADAPTER_WEIGHTS]: serializeSafetensors(tensors, { format: "pt" }),
  });
}

function readAdapterConfig(dir: string) {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(file)) throw new UserError(`${file}: not found (an adapter directory holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  return fromAdapterConfigJson(json as Record<string, unknown>, file);
}

export interface LoadAdapterOptions {
  /** Name of the adapter inside the model (default "default"). */
  name?: string;
  /** Train it further (true) or keep it frozen (false, the default, as PEFT's is_trainable=False). */
  trainable?: boolean;
  seed?: number;
}

/**
 * Loads a PEFT adapter directory onto `model`: a plain CausalLM is wrapped into a new PeftModel, a
 * PeftModel gets one more adapter. The loaded adapter becomes the active one.
 */
export async function loadAdapter(model: CausalLM | PeftModel, dir: string, options: LoadAdapterOptions = {}): Promise<PeftModel> {
  const name = options.name ?? "default";
  const config = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(file))
    throw new UserError(`${file}: not found (adapter_model.bin pickles are not supported; save adapters with safe_serialization)`);
  const peft = model instanceof PeftModel ? model : PeftModel.create(model, config, { adapterName: name, seed: options.seed });
  if (model instanceof PeftModel) {
    model.addAdapter(name, config);
    model.setAdapter(name);
  }
  await loadAdapterWeights(peft, dir, name);
  peft.setFrozen(name, !options.trainable);
  return peft;
}

/** Assigns the weights of a saved adapter to the existing adapter `name` of `peft` (checking names and shapes). */
export async function loadAdapterWeights(peft: PeftModel, dir: string, name: string): Promise<void> {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  const tensors = await readSafetensors(file);
  const params = new Map(peft.base.namedParameters());
  for (const [key, t] of tensors) {
    const target = paramPath(key, name);
    const p = params.get(target) ?? params.get(target.replace(/\.bias$/, ".base_layer.bias"));
    if (!p)
      throw new UserError(`${file}: tensor "${key}" does not belong to any module of the model (is the adapter for another base model?)`);
    if (p.shape.join() !== t.shape.join()) {
      throw new UserError(
        `${file}: tensor "${key}" has shape [${t.shape.join(", ")}] but the model expects [${p.shape.join(", ")}] (r or target modules differ from adapter_config.json?)`,
      );
    }
    tf.tidy(() => p.assign(tf.tensor(t.data, t.shape)));
  }
  const expected = [...params.keys()].filter((k) => k.includes(`.lora_A.${name}.`) || k.includes(`.lora_B.${name}.`));
  const loaded = new Set([...tensors.keys()].map((k) => paramPath(k, name)));
  const missing = expected.filter((k) => !loaded.has(k));
  if (missing.length)
    throw new UserError(`${file}: missing ${missing.length} adapter tensor(s), e.g. "${PREFIX}${missing[0]!.replace(`.${name}.`, ".")}"`);
}
