/** Options and steps shared by the model-using commands. */
import { backendInfo, describeBackend, initBackend } from "../backend/index.js";
import { formatBytes } from "../backend/memory.js";
import { validate } from "../core/check.js";
import { loadModel, quantizeRule, type LoadedModel } from "../models/load.js";
import { describeWeights } from "../models/memory-estimate.js";
import type { QuantizeFormat } from "../quant/frozen-weight.js";
import { weightsByFormat } from "../train/run-memory.js";
import { loadAdapter } from "../lora/adapter-io.js";
import type { CausalLM } from "../models/causal-lm.js";

export const backendOption = { backend: { type: "string" } } as const;
export const adapterOption = { adapter: { type: "string" } } as const;
export const quantizeOption = { quantize: { type: "string" } } as const;
/** What eval and generate take to pick a model: --backend, --adapter, --quantize. */
export const modelOptions = { ...backendOption, ...adapterOption, ...quantizeOption } as const;

/** The --quantize flag: how to store the decoder projections (undefined: float32). */
export function quantizeFlag(text: string | undefined): QuantizeFormat | undefined {
  return text === undefined ? undefined : validate(text, quantizeRule, "", "--quantize");
}

/** Initialises the backend and loads the model (projections stored as `quantize` says). */
export async function prepareModel(modelRef: string, backend: string | undefined, quantize?: QuantizeFormat): Promise<LoadedModel> {
  await initBackend(backend);
  return loadModel(modelRef, { quantize });
}

/**
 * Reports the backend on stderr (unless quiet), and for a quantized model how its weights are stored. Commands
 * call it once their inputs are validated, so that an input error stays the only line on stderr.
 */
export function reportBackend(quiet = false, loaded?: LoadedModel): void {
  const info = backendInfo();
  if (info && !quiet) console.error(describeBackend(info));
  if (loaded?.quantize && !quiet) {
    const weights = weightsByFormat(loaded.model.namedParameters(), loaded.model.namedStoredWeights());
    console.error(`weights: ${describeWeights(weights, formatBytes)}`);
  }
}

/** The model with the PEFT adapter in `adapterDir` applied (frozen), or the model itself. */
export async function withAdapter(loaded: LoadedModel, adapterDir: string | undefined): Promise<CausalLM> {
  return adapterDir === undefined ? loaded.model : loadAdapter(loaded.model, adapterDir);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
