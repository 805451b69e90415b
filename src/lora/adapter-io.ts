/**
 * Adapters on disk in PEFT's format: adapter_config.json + adapter_model.safetensors (keys in
 * adapter-tensors.ts). Loading checks the whole file against the adapter's config before it changes
 * anything, and takes a half-added adapter back out when a check fails.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { isFloatDType, readSafetensors, serializeSafetensors, type DecodedTensor, type TensorToWrite } from "../checkpoint/safetensors.js";
import { settleDirectory, writeDirectoryAtomic } from "../core/files.js";
import type { CausalLM } from "../models/causal-lm.js";
import { getModule } from "../nn/module.js";
import { fromAdapterConfigJson, toAdapterConfigJson } from "./config.js";
import { adapterTensors, type AdapterTensor, PEFT_PREFIX } from "./adapter-tensors.js";
import { PeftModel } from "./peft-model.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** Writes adapter `name` as a PEFT adapter directory (atomically: the old directory stays until the new one is complete). */
export async function saveAdapter(model: PeftModel, dir: string, name = model.activeAdapters[0] ?? "default"): Promise<void> {
  const info = model.adapters.get(name);
  if (!info) throw new UserError(`no adapter "${name}" to save`);
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of adapterTensors(model, name)) {
    const value = t.read();
    tensors[t.key] = { shape: value.shape, data: value.dataSync() as Float32Array };
  }
  const config = toAdapterConfigJson(info.config, info.targets);
  await writeDirectoryAtomic(dir, {
    [ADAPTER_CONFIG]: `${JSON.stringify(config, null, 2)}\n`,
    [ADAPTER_WEIGHTS]: serializeSafetensors(tensors, { format: "pt" }),
  });
}

function readAdapterConfig(file: string) {
  if (!fs.existsSync(file)) throw new UserError(`${file}: not found (an adapter directory holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return fromAdapterConfigJson(json, file);
}

export interface LoadAdapterOptions {
  /** Name of the adapter inside the model (default "default"). */
  name?: string;
  /** Train it further (true) or keep it frozen (false, the default, as PEFT's is_trainable=False). */
  trainable?: boolean;
  /** Seed of the adapter's dropout stream when it trains further (default: the PeftModel's seed). */
  seed?: number;
}

/**
 * Loads a PEFT adapter directory onto `model`: a plain CausalLM is wrapped into a new PeftModel, a
 * PeftModel gets one more adapter. The loaded adapter becomes the active one.
 */
export async function loadAdapter(model: CausalLM | PeftModel, dir: string, options: LoadAdapterOptions = {}): Promise<PeftModel> {
  const name = options.name ?? "default";
  settleDirectory(dir); // a save killed between its two renames left the adapter beside its place
  const configFile = path.join(dir, ADAPTER_CONFIG);
  const config = readAdapterConfig(configFile);
  const weightsFile = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(weightsFile))
    throw new UserError(`${weightsFile}: not found (adapter_model.bin pickles are not supported; save adapters with safe_serialization)`);
  const peft = model instanceof PeftModel ? model : PeftModel.emptyOn(model, options.seed);
  peft.addAdapter(name, config, { seed: options.seed, file: configFile, training: options.trainable });
  try {
    await loadAdapterWeights(peft, dir, name);
  } catch (e) {
    peft.deleteAdapter(name); // a plain model gets its layers back unwrapped
    throw e;
  }
  peft.setAdapter(name);
  peft.setFrozen(name, !options.trainable);
  return peft;
}

/**
 * Assigns the weights of a saved adapter to the existing adapter `name` of `peft`. Every tensor of the file
 * must be one the adapter's config allows, with the right shape, and every required one must be there;
 * nothing is assigned unless all of them are.
 */
export async function loadAdapterWeights(peft: PeftModel, dir: string, name: string): Promise<void> {
  const file = path.join(dir, ADAPTER_WEIGHTS);
  const tensors = await readSafetensors(file);
  const expected = adapterTensors(peft, name);
  const byKey = new Map(expected.flatMap((t) => [t.key, ...t.aliases].map((k) => [k, t] as const)));
  const found = new Map<AdapterTensor, DecodedTensor>();
  for (const [key, t] of tensors) {
    const target = byKey.get(key) ?? byKey.get(PEFT_PREFIX + key);
    if (!target) throw new UserError(`${file}: ${key}: ${notAllowed(peft, name, key)}`);
    if (found.has(target)) throw new UserError(`${file}: ${key}: the file holds this tensor twice (also as ${target.key})`);
    // Integer or bool bits read as floats would be meaningless weights.
    if (!isFloatDType(t.dtype))
      throw new UserError(`${file}: ${key}: expected a floating-point tensor (F32, F16, BF16 or F64), got dtype ${t.dtype}`);
    if (target.shape.join() !== t.shape.join())
      throw new UserError(
        `${file}: ${key}: expected shape [${target.shape.join(", ")}], got [${t.shape.join(", ")}] (r or target modules differ from ${ADAPTER_CONFIG}?)`,
      );
    found.set(target, t);
  }
  const missing = expected.filter((t) => t.required && !found.has(t));
  if (missing.length) {
    const dora = missing[0]!.key.endsWith("lora_magnitude_vector") ? ` (${ADAPTER_CONFIG} has use_dora: true)` : "";
    throw new UserError(`${file}: missing ${missing.length} adapter tensor(s), e.g. "${missing[0]!.key}"${dora}`);
  }
  for (const [target, t] of found) tf.tidy(() => target.write(tf.tensor(t.data, t.shape)));
}

/** Why `key` is not a tensor of adapter `name`, in the words of its config. */
function notAllowed(peft: PeftModel, name: string, key: string): string {
  const info = peft.adapters.get(name)!;
  const inner = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  const lora = /^(.*)\.(?:lora_A|lora_B|lora_magnitude_vector)(?:\.weight)?$/.exec(inner);
  if (lora) {
    if (inner.includes("lora_magnitude_vector") && !info.config.useDora) return "a DoRA magnitude, but use_dora is false";
    if (getModule(peft.base, lora[1]!)) return `a LoRA tensor of ${lora[1]}, which target_modules does not select`;
    return "names no module of the model (is the adapter for another base model?)";
  }
  const params = new Set([...peft.base.namedParameters()].map(([p]) => p.replace(".base_layer.", ".")));
  if (!params.has(inner.replace(".base_layer.", "."))) return "names no parameter of the model (is the adapter for another base model?)";
  const config = info.config;
  const holds = [
    config.useDora ? "lora_A, lora_B and lora_magnitude_vector of its target modules" : "lora_A and lora_B of its target modules",
    `modules_to_save: ${JSON.stringify(config.modulesToSave)}`,
    `bias: ${JSON.stringify(config.bias)}`,
  ];
  return `a parameter of the base model that this adapter may not change (its ${ADAPTER_CONFIG} allows ${holds.join("; ")})`;
}
