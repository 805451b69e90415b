/**
 * The Hugging Face cache layout shared with huggingface_hub and transformers:
 *
 *     <cache>/models--{org}--{name}/
 *       blobs/<etag>                         file contents
 *       snapshots/<commit>/<file>            symlinks to ../../blobs/<etag>
 *       refs/<revision>                      the commit sha a branch/tag pointed to
 *       .no_exist/<commit>/<file>            markers for files known to be absent from the repo
 *
 * A snapshot is usable when it holds config.json and complete safetensors weights (every shard its index names).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { writeFileAtomic } from "../../core/files.js";
import { pathKind } from "../../core/paths.js";
import { INDEX_FILE, readShardIndex } from "../shard-index.js";
import { SINGLE_FILE } from "../sharded.js";

export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** The cache folder of a hub model: <cache>/models--{org}--{name}. */
export function hubRepoDir(id: string, cacheDir: string): string {
  return join(cacheDir, `models--${id.split("/").join("--")}`);
}

/** A relative path inside a repo or snapshot that cannot escape it (revisions and repo file names). */
export function isSafeRelative(p: string): boolean {
  return (
    p.length > 0 &&
    !isAbsolute(p) &&
    !p.includes("\\") &&
    !/^[A-Za-z]:/.test(p) &&
    p.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..")
  );
}

const isFile = async (p: string) => (await pathKind(p)) === "file";

/** Which of config.json + safetensors weights the snapshot lacks (shards come from the index); empty when usable. */
export async function missingEssentials(snapshot: string): Promise<string[]> {
  const missing: string[] = [];
  if (!(await isFile(join(snapshot, "config.json")))) missing.push("config.json");
  if (await isFile(join(snapshot, SINGLE_FILE))) return missing;
  if (!(await isFile(join(snapshot, INDEX_FILE)))) return [...missing, `${SINGLE_FILE} (or ${INDEX_FILE})`];
  let shards: string[];
  try {
    shards = readShardIndex(snapshot).shards;
  } catch {
    return [...missing, `a valid ${INDEX_FILE}`];
  }
  for (const shard of shards) if (!(await isFile(join(snapshot, shard)))) missing.push(shard);
  return missing;
}

export interface CacheLookup {
  /** Snapshot directory when the revision resolves to a commit locally. */
  snapshot?: string;
  /** What a complete snapshot lacks (essentials and the extra files asked for); empty when usable. */
  missing: string[];
  /** True when config.json and the weights are there (extra files may still be missing). */
  essentials: boolean;
}

/** The snapshot `revision` (a branch, tag or commit sha) points to in `storage`, and what it lacks. */
export async function lookupCache(storage: string, revision: string, extra: readonly string[]): Promise<CacheLookup> {
  let sha: string | undefined;
  if (COMMIT_SHA.test(revision)) {
    sha = revision;
  } else {
    try {
      const pointed = (await readFile(join(storage, "refs", revision), "utf8")).trim();
      if (COMMIT_SHA.test(pointed)) sha = pointed;
    } catch {
      // no ref → not cached
    }
  }
  const whole = { missing: ["the whole snapshot"], essentials: false };
  if (sha === undefined) return whole;
  const snapshot = join(storage, "snapshots", sha);
  if ((await pathKind(snapshot)) !== "dir") return whole;
  const missing = await missingEssentials(snapshot);
  const essentials = missing.length === 0;
  for (const f of extra) {
    if (!(await isFile(join(snapshot, f))) && (await pathKind(join(storage, ".no_exist", sha, f))) === undefined) missing.push(f);
  }
  return { snapshot, missing, essentials };
}

/** huggingface_hub's marker for "this file does not exist at this commit". */
export async function markAbsent(storage: string, sha: string, file: string): Promise<void> {
  const marker = join(storage, ".no_exist", sha, file);
  await mkdir(dirname(marker), { recursive: true });
  await writeFile(marker, "");
}

/** Records that `revision` points to commit `sha` (atomically: a reader never sees half a sha). */
export async function writeRef(storage: string, revision: string, sha: string): Promise<void> {
  const refPath = join(storage, "refs", revision);
  await mkdir(dirname(refPath), { recursive: true });
  await writeFileAtomic(refPath, sha);
}
