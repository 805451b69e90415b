/**
 * Downloading a model snapshot into the Hugging Face cache: which files to fetch (config, tokenizer and
 * generation files the repo has, safetensors weights — one file or every shard its index names), fetched with
 * `@huggingface/hub`, which writes each blob to `<blob>.incomplete` and renames it into place, so a killed
 * download never leaves a truncated file behind a snapshot link. The ref is written last, once the snapshot is
 * complete.
 */
import { dirname, join } from "node:path";
import { downloadFileToCacheDir, modelInfo } from "@huggingface/hub";
import { UserError } from "../../core/errors.js";
import { INDEX_FILE, readShardIndex } from "../shard-index.js";
import { SINGLE_FILE } from "../sharded.js";
import { COMMIT_SHA, markAbsent, missingEssentials, writeRef } from "./cache.js";

/** Small files fetched with every model when the repo has them (the weights are added separately). */
export const DEFAULT_MODEL_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

export interface DownloadParams {
  id: string;
  revision: string;
  /** Repo files to fetch besides the defaults and the weights; skipped when the repo lacks them. */
  extra: readonly string[];
  cacheDir: string;
  /** The model's folder in the cache (hubRepoDir). */
  storage: string;
  hubUrl: string;
  fetchFn: typeof fetch;
  accessToken: string | undefined;
}

/** Downloads what `p.id` at `p.revision` needs and returns its snapshot directory. */
export async function downloadSnapshot(p: DownloadParams): Promise<string> {
  const info = await modelInfo({
    name: p.id,
    revision: p.revision,
    additionalFields: ["sha", "filePaths"],
    hubUrl: p.hubUrl,
    fetch: p.fetchFn,
    accessToken: p.accessToken,
  });
  const sha = info.sha;
  if (typeof sha !== "string" || !COMMIT_SHA.test(sha)) {
    throw new Error(`the hub returned no commit sha for revision "${p.revision}"`);
  }
  const inRepo = new Set(info.filePaths ?? []);
  const where = `model "${p.id}" (${p.hubUrl}/${p.id}, commit ${sha})`;
  if (!inRepo.has("config.json")) throw new UserError(`${where} has no config.json; is it a transformers model repo?`);
  const hasSingle = inRepo.has(SINGLE_FILE);
  if (!hasSingle && !inRepo.has(INDEX_FILE)) {
    const others = [...inRepo].filter((f) => /\.(bin|pt|pth|gguf|h5|msgpack)$/.test(f));
    throw new UserError(
      `${where} has no safetensors weights (${SINGLE_FILE} or ${INDEX_FILE})` +
        (others.length > 0 ? `, only ${others.slice(0, 3).join(", ")}; loralab reads safetensors only` : ""),
    );
  }

  const get = (path: string) =>
    downloadFileToCacheDir({
      repo: { type: "model", name: p.id },
      path,
      revision: sha,
      cacheDir: p.cacheDir,
      hubUrl: p.hubUrl,
      fetch: p.fetchFn,
      accessToken: p.accessToken,
    });

  for (const f of new Set([...DEFAULT_MODEL_FILES, ...p.extra])) {
    if (inRepo.has(f)) await get(f);
    else await markAbsent(p.storage, sha, f);
  }
  if (hasSingle) {
    await get(SINGLE_FILE);
  } else {
    const index = readShardIndex(dirname(await get(INDEX_FILE)));
    for (const shard of index.shards) {
      if (!inRepo.has(shard)) throw new UserError(`${where}: ${INDEX_FILE} names ${shard}, which the repo lacks`);
      await get(shard);
    }
  }

  const snapshot = join(p.storage, "snapshots", sha);
  const missing = await missingEssentials(snapshot);
  if (missing.length > 0) throw new Error(`snapshot ${snapshot} is still missing ${missing.join(", ")} after download`);
  if (p.revision !== sha) await writeRef(p.storage, p.revision, sha);
  return snapshot;
}
