/** Options and steps shared by the model-using commands. */
import { describeBackend, initBackend } from "../backend.js";
import { loadModel, type LoadedModel } from "../models/load.js";
import { loadAdapter } from "../lora/adapter-io.js";
import type { CausalLM } from "../models/causal-lm.js";

export const backendOption = { backend: { type: "string" } } as const;
export const adapterOption = { adapter: { type: "string" } } as const;

/** Initialises the backend (reported on stderr unless quiet) and loads the model. */
export async function prepareModel(modelRef: string, backend: string | undefined, quiet: boolean): Promise<LoadedModel> {
  const info = await initBackend(backend);
  if (!quiet) console.error(describeBackend(info));
  return loadModel(modelRef);
}

/** The model with the PEFT adapter in `adapterDir` applied (frozen), or the model itself. */
export async function withAdapter(loaded: LoadedModel, adapterDir: string | undefined): Promise<CausalLM> {
  return adapterDir === undefined ? loaded.model : loadAdapter(loaded.model, adapterDir);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
