/**
 * `model.safetensors.index.json`, the table of contents of a sharded checkpoint:
 * {"metadata": {"total_size": …}, "weight_map": {tensor name: shard file}}. The one reader of it, used both
 * to load a checkpoint directory and to decide which shards a hub download or cache lookup needs.
 */
import { join } from "node:path";
import { check, Fields, invalid, nonNegativeInt } from "../core/check.js";
import { readJsonObject } from "../core/json-file.js";

export const INDEX_FILE = "model.safetensors.index.json";

export interface ShardIndex {
  /** The index file, as error messages name it. */
  file: string;
  /** Tensor name → shard file name (in the index's own directory). */
  weightMap: ReadonlyMap<string, string>;
  /** The distinct shard files, in the order the weight_map first names them. */
  shards: string[];
}

/** A shard is a plain file name beside the index: an index must not point outside its own directory. */
const shardFileName = check<string>(
  "a shard file name in the same directory",
  (v) => typeof v === "string" && v !== "" && v !== "." && v !== ".." && !/[/\\]/.test(v) && !/^[A-Za-z]:/.test(v),
);

/** Validates the parsed JSON of an index; `file` names it in errors. */
export function parseShardIndex(raw: unknown, file: string): ShardIndex {
  const fields = Fields.of(file, raw);
  const metadata: Record<string, unknown> = fields.optional("metadata", check<Record<string, unknown>>("an object", isObject), {});
  if (metadata.total_size !== undefined && !nonNegativeInt.accepts(metadata.total_size)) {
    throw invalid(file, "metadata.total_size", "a non-negative integer (bytes)", metadata.total_size);
  }
  const map = fields.required("weight_map", check<Record<string, unknown>>("an object of tensor name → shard file", isObject));
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (!shardFileName.accepts(shard)) throw invalid(file, `weight_map[${JSON.stringify(tensor)}]`, shardFileName.expected, shard);
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw invalid(file, "weight_map", "at least one tensor", map);
  return { file, weightMap, shards: [...new Set(weightMap.values())] };
}

/** Reads and validates `<dir>/model.safetensors.index.json`. */
export function readShardIndex(dir: string): ShardIndex {
  const file = join(dir, INDEX_FILE);
  const fields = readJsonObject(file, "a sharded checkpoint lists its shards there");
  return parseShardIndex(fields.raw, file);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
