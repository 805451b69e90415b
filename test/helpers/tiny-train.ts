/** Small models and data for LoRA/trainer tests: fast enough to take many steps. */
import * as path from "node:path";
import { loadModel, type LoadedModel } from "../../src/models/load.js";
import type { Example } from "../../src/data/batch.js";
import { Random } from "../../src/core/random.js";
import { tempDir } from "./paths.js";
import { TINY_VOCAB, type TinyKind, writeTinyCheckpoint } from "./tiny-models.js";

export async function tinyModel(kind: TinyKind, seed = 7): Promise<LoadedModel> {
  return loadModel(await writeTinyCheckpoint(path.join(tempDir(`tiny-${kind}`), kind), kind, seed));
}

/** Random token sequences of varied lengths (so batches are padded). */
export function tinyData(count: number, seed = 3): Example[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => ({
    inputIds: Array.from({ length: 4 + random.int(9) }, () => random.int(TINY_VOCAB)),
  }));
}
