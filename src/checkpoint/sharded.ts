/**
 * Hugging Face checkpoint directories: either one `model.safetensors`, or shards
 * `model-00001-of-0000N.safetensors` listed by `model.safetensors.index.json`
 * ({"metadata": {"total_size": …}, "weight_map": {tensor name: shard file}}).
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { inputError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";
import { pathKind } from "../core/paths.js";
import { INDEX_FILE, readShardIndex } from "./shard-index.js";
import { SafetensorsFileSource, type TensorSource } from "./tensor-source.js";
import {
  serializeSafetensors,
  sortedEntries,
  tensorByteLength,
  type DecodedTensor,
  type TensorsToWrite,
  type TensorToWrite,
} from "./safetensors.js";

export const SINGLE_FILE = "model.safetensors";
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** The file that names the checkpoint's tensors (errors about missing or unexpected tensors point at it). */
export function weightsFileOf(dir: string): string {
  return existsSync(join(dir, SINGLE_FILE)) || !existsSync(join(dir, INDEX_FILE)) ? join(dir, SINGLE_FILE) : join(dir, INDEX_FILE);
}

/** The checkpoint in `dir` as a tensor source: headers read and checked (shards against their index), tensors on demand. */
export async function openCheckpoint(dir: string): Promise<TensorSource> {
  if ((await pathKind(dir)) !== "dir") throw inputError(dir, "not a directory; expected a checkpoint directory");
  const single = join(dir, SINGLE_FILE);
  if ((await pathKind(single)) === "file") return SafetensorsFileSource.open(single);
  if ((await pathKind(join(dir, INDEX_FILE))) === "file") return openSharded(dir);
  throw inputError(
    dir,
    `no ${SINGLE_FILE} or ${INDEX_FILE} in this directory; PyTorch .bin (pickle) checkpoints are not supported — convert them to safetensors first`,
  );
}

/** Read every tensor of the checkpoint in `dir`, decoded to float32. */
export async function readCheckpointTensors(dir: string): Promise<Map<string, DecodedTensor>> {
  const source = await openCheckpoint(dir);
  try {
    return new Map(source.names().map((name) => [name, source.read(name)]));
  } finally {
    source.close();
  }
}

async function openSharded(dir: string): Promise<TensorSource> {
  const index = readShardIndex(dir);
  const indexPath = index.file;
  const byShard = new Map<string, Set<string>>(index.shards.map((s) => [s, new Set()]));
  for (const [tensor, shard] of index.weightMap) byShard.get(shard)!.add(tensor);
  // Check all shards exist before reading any: fail fast rather than after loading gigabytes.
  for (const shard of index.shards) {
    if ((await pathKind(join(dir, shard))) !== "file") {
      throw inputError(indexPath, `weight_map lists shard "${shard}" but ${join(dir, shard)} does not exist`);
    }
  }

  const files: SafetensorsFileSource[] = [];
  const owner = new Map<string, SafetensorsFileSource>();
  const foundIn = new Map<string, string>();
  try {
    for (const [shard, listed] of byShard) {
      const file = SafetensorsFileSource.open(join(dir, shard));
      files.push(file);
      for (const name of file.names()) {
        const other = foundIn.get(name);
        if (other !== undefined) {
          throw inputError(
            indexPath,
            `tensor "${name}" is in two shards, "${other}" and "${shard}"; expected each tensor in exactly one shard`,
          );
        }
        if (!listed.has(name)) {
          const listedIn = index.weightMap.get(name);
          throw inputError(
            indexPath,
            listedIn === undefined
              ? `shard "${shard}" contains tensor "${name}", which weight_map does not list; expected every tensor listed`
              : `shard "${shard}" contains tensor "${name}" but weight_map puts it in "${listedIn}"`,
          );
        }
        foundIn.set(name, shard);
        owner.set(name, file);
      }
      for (const name of listed) {
        if (!owner.has(name))
          throw inputError(indexPath, `weight_map puts tensor "${name}" in "${shard}" but that shard does not contain it`);
      }
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  return {
    names: () => [...owner.keys()],
    header: (name) => owner.get(name)?.header(name),
    read: (name) => {
      const file = owner.get(name);
      if (!file) throw new Error(`${indexPath}: no tensor "${name}"`);
      return file.read(name);
    },
    close: () => files.forEach((f) => f.close()),
  };
}

const pad5 = (n: number) => String(n).padStart(5, "0");

/**
 * Write `tensors` to `dir` the way transformers' save_pretrained does: greedily pack tensors (in name
 * order) into shards of at most `maxShardBytes` of tensor data (a larger tensor gets a shard of its
 * own), write `model-0000i-of-0000N.safetensors` and `model.safetensors.index.json`. If everything fits
 * in one shard, write a single `model.safetensors` and no index, as transformers does. Stale checkpoint
 * files from an earlier save (the other layout, or shards with another N) are removed afterwards, since
 * `readCheckpointTensors` would otherwise prefer or mix them in. Each file is written atomically.
 * Returns the file names written. Shard metadata defaults to {format: "pt"}, which transformers expects.
 */
export async function writeShardedCheckpoint(
  dir: string,
  tensors: TensorsToWrite,
  maxShardBytes: number,
  metadata: Record<string, string> = { format: "pt" },
): Promise<string[]> {
  if (!(maxShardBytes > 0)) throw new Error(`maxShardBytes is ${maxShardBytes}; expected a positive number`);
  // Validate and size everything before touching the disk.
  const shards: { entries: [string, TensorToWrite][]; bytes: number }[] = [];
  let total = 0;
  for (const [name, t] of sortedEntries(tensors)) {
    const size = tensorByteLength(name, t);
    total += size;
    const last = shards.at(-1);
    if (last && last.bytes + size <= maxShardBytes) {
      last.entries.push([name, t]);
      last.bytes += size;
    } else {
      shards.push({ entries: [[name, t]], bytes: size });
    }
  }
  await mkdir(dir, { recursive: true });

  const written: string[] = [];
  if (shards.length <= 1) {
    await writeFileAtomic(join(dir, SINGLE_FILE), serializeSafetensors(new Map(shards[0]?.entries ?? []), metadata));
    written.push(SINGLE_FILE);
  } else {
    const weightMap: [string, string][] = [];
    for (const [i, shard] of shards.entries()) {
      const file = `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
      await writeFileAtomic(join(dir, file), serializeSafetensors(new Map(shard.entries), metadata));
      for (const [name] of shard.entries) weightMap.push([name, file]);
      written.push(file);
    }
    // The index goes last, so until it lands a reader still sees the previous checkpoint's index.
    const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(weightMap) };
    await writeFileAtomic(join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + "\n");
    written.push(INDEX_FILE);
  }

  const keep = new Set(written);
  for (const f of await readdir(dir)) {
    if (!keep.has(f) && (f === SINGLE_FILE || f === INDEX_FILE || SHARD_NAME.test(f))) await rm(join(dir, f), { force: true });
  }
  return written;
}
