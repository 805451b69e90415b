/** Options and steps shared by the model-using commands. */
import { backendInfo, describeBackend, initBackend } from "../backend/index.js";
import { loadModel, type LoadedModel } from "../models/load.js";
import { loadAdapter } from "../lora/adapter-io.js";
import type { CausalLM } from "../models/causal-lm.js";

export const backendOption = { backend: { type: "string" } } as const;
export const adapterOption = { adapter: { type: "string" } } as const;

/** Initialises the backend and loads the model. */
export async function prepareModel(modelRef: string, backend: string | undefined): Promise<LoadedModel> {
  await initBackend(backend);
  return loadModel(modelRef);
}

/**
 * Reports the backend on stderr (unless quiet). Commands call it once their inputs are validated,
 * so that an input error stays the only line on stderr.
 */
export function reportBackend(quiet = false): void {
  const info = backendInfo();
  if (info && !quiet) console.error(describeBackend(info));
}

/** The model with the PEFT adapter in `adapterDir` applied (frozen), or the model itself. */
export async function withAdapter(loaded: LoadedModel, adapterDir: string | undefined): Promise<CausalLM> {
  return adapterDir === undefined ? loaded.model : loadAdapter(loaded.model, adapterDir);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
