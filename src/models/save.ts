/** Writing a model as a plain Hugging Face checkpoint directory (e.g. after merge-and-unload). */
import * as fs from "node:fs";
import * as path from "node:path";
import { serializeSafetensors, type TensorToWrite } from "../checkpoint/safetensors.js";
import { writeDirectoryAtomic } from "../core/files.js";
import type { CausalLM } from "./causal-lm.js";

/** Files besides the weights that make a directory loadable by transformers and by loralab. */
const COPIED = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
];

/**
 * Saves `model`'s weights as model.safetensors with the config and tokenizer files of `sourceDir`,
 * atomically replacing `outDir`. Tied output heads are not stored (as transformers does).
 */
export async function saveModelDirectory(model: CausalLM, sourceDir: string, outDir: string): Promise<void> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, p] of model.namedParameters()) tensors[name] = { shape: p.shape, data: p.dataSync() as Float32Array };
  const files: Record<string, Uint8Array | string> = { "model.safetensors": serializeSafetensors(tensors, { format: "pt" }) };
  for (const f of COPIED) {
    const src = path.join(sourceDir, f);
    if (fs.existsSync(src)) files[f] = fs.readFileSync(src);
  }
  await writeDirectoryAtomic(outDir, files);
}
