/**
 * Resolve a model reference — a local directory, the name of a model shipped with loralab, or a Hugging Face hub
 * id — to a local directory.
 *
 * Hub models live in the standard Hugging Face cache layout shared with `huggingface_hub`/`transformers`:
 *
 *     <cache>/models--{org}--{name}/
 *       blobs/<etag>                         file contents
 *       snapshots/<commit>/<file>            symlinks to ../../blobs/<etag>
 *       refs/<revision>                      the commit sha a branch/tag pointed to
 *       .no_exist/<commit>/<file>            markers for files known to be absent from the repo
 *
 * A complete cached snapshot is used without any network access; otherwise the files are fetched with
 * `@huggingface/hub` (into the same cache) under an inactivity timeout, so a dead network never hangs.
 */
import { constants as fsConstants } from "node:fs";
import { access, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { downloadFileToCacheDir, HUB_URL, HubApiError, modelInfo } from "@huggingface/hub";
import { UserError } from "../core/errors.js";
import { isShippedModel, shippedModelDir } from "../models/shipped.js";

export interface ResolveModelOptions {
  /** Branch, tag or 40-hex commit sha. Default "main". */
  revision?: string;
  /** Never touch the network. Default: on when env HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  /**
   * Give up when the hub has been silent (no response, no body bytes) for this long, in ms.
   * Default: env LORALAB_HUB_TIMEOUT_MS, else 60 000.
   */
  timeoutMs?: number;
  /**
   * Extra repo files to fetch besides {@link DEFAULT_MODEL_FILES} and the safetensors weights
   * (e.g. "chat_template.jinja"). Files the repo does not have are skipped.
   */
  files?: string[];
}

/** Small files fetched with every model when the repo has them (the weights are added separately). */
export const DEFAULT_MODEL_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

export const DEFAULT_HUB_TIMEOUT_MS = 60_000;

const SINGLE_WEIGHTS = "model.safetensors";
const WEIGHTS_INDEX = "model.safetensors.index.json";
const COMMIT_SHA = /^[0-9a-f]{40}$/;
/** huggingface_hub's validate_repo_id: optional namespace, name ≤ 96 chars of [\w.-], word chars at both ends. */
const REPO_PART = String.raw`[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?`;
const REPO_ID = new RegExp(`^(?:${REPO_PART}/)?${REPO_PART}$`);

// ---------------------------------------------------------------------------------------------
// Environment

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") || p.startsWith("~\\") ? join(homedir(), p.slice(1)) : p;
}

/**
 * The hub cache directory, with huggingface_hub's precedence: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE (legacy),
 * $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. Returned absolute, "~" expanded.
 */
export function hubCachePath(): string {
  const explicit = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (explicit !== undefined) return resolve(expandHome(explicit));
  const hfHome = env("HF_HOME") ?? join(env("XDG_CACHE_HOME") ?? join(homedir(), ".cache"), "huggingface");
  return resolve(expandHome(hfHome), "hub");
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ["1", "ON", "YES", "TRUE"].includes(v.trim().toUpperCase());
}

/** HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read like huggingface_hub does (1/ON/YES/TRUE). */
export function hubOfflineFromEnv(): boolean {
  return isTrue(env("HF_HUB_OFFLINE")) || isTrue(env("TRANSFORMERS_OFFLINE"));
}

function hubEndpoint(): string {
  return (env("HF_ENDPOINT") ?? HUB_URL).replace(/\/+$/, "");
}

function hubToken(): string | undefined {
  return env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN");
}

function timeoutFrom(options: ResolveModelOptions): number {
  if (options.timeoutMs !== undefined) {
    if (!(Number.isFinite(options.timeoutMs) && options.timeoutMs > 0)) {
      throw new UserError(`timeoutMs must be a positive number of milliseconds, got ${options.timeoutMs}`);
    }
    return options.timeoutMs;
  }
  const raw = env("LORALAB_HUB_TIMEOUT_MS");
  if (raw === undefined) return DEFAULT_HUB_TIMEOUT_MS;
  const n = Number(raw);
  if (!(Number.isFinite(n) && n > 0)) {
    throw new UserError(`LORALAB_HUB_TIMEOUT_MS must be a positive number of milliseconds, got "${raw}"`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reference classification

/** True for refs that can only be a filesystem path (never a hub id). */
function looksLikePath(ref: string): boolean {
  return (
    ref === "." ||
    ref === ".." ||
    ref.startsWith("./") ||
    ref.startsWith("../") ||
    ref.startsWith("/") ||
    ref.startsWith("~") ||
    ref.startsWith(".\\") ||
    ref.startsWith("..\\") ||
    ref.includes("\\") ||
    /^[A-Za-z]:/.test(ref) ||
    ref.split("/").length > 2
  );
}

/** huggingface_hub's repo-id rules (validate_repo_id). */
export function isHubModelId(ref: string): boolean {
  if (!REPO_ID.test(ref)) return false;
  const name = ref.includes("/") ? ref.slice(ref.indexOf("/") + 1) : ref;
  return name.length <= 96 && !ref.includes("--") && !ref.includes("..") && !ref.endsWith(".git");
}

/** A relative path inside a repo/snapshot that cannot escape it. */
function isSafeRelative(p: string): boolean {
  return (
    p.length > 0 &&
    !isAbsolute(p) &&
    !p.startsWith("/") &&
    !p.includes("\\") &&
    !/^[A-Za-z]:/.test(p) &&
    p.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..")
  );
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Exists after following symlinks (a dangling snapshot link counts as missing). */
async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, fsConstants.F_OK);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Public entry point

/**
 * Resolve `ref` to an absolute local directory holding the model.
 *
 * - An existing directory (absolute, relative to cwd, or "~/…") is returned as is (absolute).
 * - A path-like ref that does not exist → UserError "model directory not found: …".
 * - The name of a model shipped with loralab ("tiny-moby", see src/models/shipped.ts) → its directory in the package.
 * - A hub id ("org/name" or "name"): the cached snapshot for `revision` (default "main", via refs/<revision>;
 *   a 40-hex sha is used directly) when it has config.json and complete safetensors weights; otherwise the
 *   files are downloaded into the cache — unless offline, which is a UserError. Network failures, HTTP errors
 *   and the inactivity timeout are UserErrors naming the id, the cache path and the reason.
 */
export async function resolveModel(ref: string, options: ResolveModelOptions = {}): Promise<string> {
  const trimmed = ref.trim();
  if (trimmed === "") throw new UserError("model reference is empty: pass a local directory or a Hugging Face id");

  const local = resolve(expandHome(trimmed));
  if (await isDirectory(local)) return local;
  if (looksLikePath(trimmed)) {
    if (await exists(local)) throw new UserError(`model path is not a directory: ${local}`);
    throw new UserError(`model directory not found: ${local}`);
  }
  if (isShippedModel(trimmed)) {
    const dir = shippedModelDir(trimmed);
    if (!(await isFile(join(dir, "config.json")))) {
      throw new UserError(
        `the shipped model "${trimmed}" is missing from the loralab package (${dir} has no config.json); reinstall loralab`,
      );
    }
    return dir;
  }
  if (!isHubModelId(trimmed)) {
    throw new UserError(`"${trimmed}" is neither an existing directory nor a valid Hugging Face model id (expected "org/name")`);
  }
  return resolveHubModel(trimmed, options);
}

// ---------------------------------------------------------------------------------------------
// Cache

interface CacheLookup {
  /** Snapshot directory when the revision resolves to a commit locally. */
  snapshot?: string;
  sha?: string;
  /** What a complete snapshot lacks; empty when usable. */
  missing: string[];
}

/** The cache folder of a hub model: <cache>/models--{org}--{name}. */
export function hubRepoDir(id: string, cacheDir: string = hubCachePath()): string {
  return join(cacheDir, `models--${id.split("/").join("--")}`);
}

/** Which of config.json + safetensors weights the snapshot lacks (shards come from the index). */
async function missingEssentials(snapshot: string): Promise<string[]> {
  const missing: string[] = [];
  if (!(await isFile(join(snapshot, "config.json")))) missing.push("config.json");
  if (await isFile(join(snapshot, SINGLE_WEIGHTS))) return missing;
  if (!(await isFile(join(snapshot, WEIGHTS_INDEX)))) {
    missing.push(`${SINGLE_WEIGHTS} (or ${WEIGHTS_INDEX})`);
    return missing;
  }
  let shards: string[];
  try {
    shards = shardsOf(JSON.parse(await readFile(join(snapshot, WEIGHTS_INDEX), "utf8")));
  } catch {
    missing.push(`a readable ${WEIGHTS_INDEX}`);
    return missing;
  }
  for (const shard of shards) if (!(await isFile(join(snapshot, shard)))) missing.push(shard);
  return missing;
}

/** Shard file names from a safetensors index ({"weight_map": {tensor: file}}). */
function shardsOf(index: unknown): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null) throw new Error("no weight_map");
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  if (shards.length === 0 || !shards.every((s): s is string => typeof s === "string" && isSafeRelative(s))) {
    throw new Error("bad weight_map");
  }
  return shards;
}

async function lookupCache(storage: string, revision: string, extra: readonly string[]): Promise<CacheLookup> {
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
  if (sha === undefined) return { missing: ["the whole snapshot"] };
  const snapshot = join(storage, "snapshots", sha);
  if (!(await isDirectory(snapshot))) return { sha, missing: ["the whole snapshot"] };
  const missing = await missingEssentials(snapshot);
  for (const f of extra) {
    if (!(await isFile(join(snapshot, f))) && !(await exists(join(storage, ".no_exist", sha, f)))) missing.push(f);
  }
  return { snapshot, sha, missing };
}

// ---------------------------------------------------------------------------------------------
// Hub

async function resolveHubModel(id: string, options: ResolveModelOptions): Promise<string> {
  const revision = options.revision ?? "main";
  if (revision.trim() === "" || !isSafeRelative(revision)) {
    throw new UserError(`invalid revision "${revision}" for model "${id}"`);
  }
  const extra = options.files ?? [];
  for (const f of extra) {
    if (!isSafeRelative(f)) throw new UserError(`invalid repo file name "${f}" for model "${id}"`);
  }
  const offline = options.offline ?? hubOfflineFromEnv();
  const timeoutMs = timeoutFrom(options);

  const cacheDir = hubCachePath();
  const storage = hubRepoDir(id, cacheDir);
  const label = revision === "main" ? `model "${id}"` : `model "${id}" at revision "${revision}"`;

  const cached = await lookupCache(storage, revision, extra);
  if (cached.snapshot !== undefined && cached.missing.length === 0) return cached.snapshot;
  // Offline, extra files are best effort: config + weights are enough.
  const essentialsCached = cached.snapshot !== undefined && (await missingEssentials(cached.snapshot)).length === 0;

  if (offline) {
    if (essentialsCached) return cached.snapshot!;
    const where =
      cached.snapshot === undefined
        ? `is not in the Hugging Face cache (${cacheDir})`
        : `is only partly in the Hugging Face cache (${cached.snapshot} lacks ${cached.missing.join(", ")})`;
    const cli = `huggingface-cli download ${id}${revision === "main" ? "" : ` --revision ${revision}`}`;
    throw new UserError(
      `${label} ${where} and offline mode is on; download it on a connected machine (e.g. ${cli}) or pass a local directory`,
    );
  }

  const hubUrl = hubEndpoint();
  try {
    return await withInactivityTimeout(timeoutMs, hubUrl, (fetchFn) =>
      downloadSnapshot({ id, revision, extra, cacheDir, storage, hubUrl, fetchFn, accessToken: hubToken() }),
    );
  } catch (e) {
    if (e instanceof UserError) throw e;
    // A connection problem should not hide a usable cached snapshot (huggingface_hub falls back too).
    if (essentialsCached && !(e instanceof HubApiError)) return cached.snapshot!;
    throw new UserError(oneLine(`could not download ${label} from ${hubUrl} into the Hugging Face cache (${cacheDir}): ${describe(e)}`), {
      cause: e,
    });
  }
}

interface DownloadParams {
  id: string;
  revision: string;
  extra: readonly string[];
  cacheDir: string;
  storage: string;
  hubUrl: string;
  fetchFn: typeof fetch;
  accessToken: string | undefined;
}

async function downloadSnapshot(p: DownloadParams): Promise<string> {
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
  const where = `${p.hubUrl}/${p.id}`;
  if (!inRepo.has("config.json")) {
    throw new UserError(`model "${p.id}" (${where}, commit ${sha}) has no config.json; is it a transformers model repo?`);
  }
  const hasSingle = inRepo.has(SINGLE_WEIGHTS);
  if (!hasSingle && !inRepo.has(WEIGHTS_INDEX)) {
    const others = [...inRepo].filter((f) => /\.(bin|pt|pth|gguf|h5|msgpack)$/.test(f));
    throw new UserError(
      `model "${p.id}" (${where}, commit ${sha}) has no safetensors weights (${SINGLE_WEIGHTS} or ${WEIGHTS_INDEX})` +
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

  const wanted = [...new Set([...DEFAULT_MODEL_FILES, ...p.extra])];
  for (const f of wanted) {
    if (inRepo.has(f)) await get(f);
    else await markAbsent(p.storage, sha, f);
  }
  if (hasSingle) {
    await get(SINGLE_WEIGHTS);
  } else {
    const indexPath = await get(WEIGHTS_INDEX);
    let shards: string[];
    try {
      shards = shardsOf(JSON.parse(await readFile(indexPath, "utf8")));
    } catch (e) {
      throw new UserError(`model "${p.id}" (${where}, commit ${sha}): unreadable ${WEIGHTS_INDEX}: ${describe(e)}`);
    }
    for (const shard of shards) {
      if (!inRepo.has(shard)) {
        throw new UserError(`model "${p.id}" (${where}, commit ${sha}): ${WEIGHTS_INDEX} names ${shard}, which the repo lacks`);
      }
      await get(shard);
    }
  }

  if (p.revision !== sha) {
    const refPath = join(p.storage, "refs", p.revision);
    await mkdir(dirname(refPath), { recursive: true });
    await writeFile(refPath, sha);
  }
  const snapshot = join(p.storage, "snapshots", sha);
  const missing = await missingEssentials(snapshot);
  if (missing.length > 0) throw new Error(`snapshot ${snapshot} is still missing ${missing.join(", ")} after download`);
  return snapshot;
}

/** huggingface_hub's marker for "this file does not exist at this commit". */
async function markAbsent(storage: string, sha: string, file: string): Promise<void> {
  const marker = join(storage, ".no_exist", sha, file);
  await mkdir(dirname(marker), { recursive: true });
  await writeFile(marker, "");
}

// ---------------------------------------------------------------------------------------------
// Timeout and error text

class HubTimeoutError extends Error {
  override name = "HubTimeoutError";
}

/**
 * Run `work` with a fetch that aborts every request once the network has been idle (no new request,
 * no response headers, no body bytes) for `timeoutMs`. The returned promise settles by then even if
 * something inside ignores the abort signal.
 */
async function withInactivityTimeout<T>(timeoutMs: number, hubUrl: string, work: (fetchFn: typeof fetch) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let rejectTimeout: (e: Error) => void = () => {};
  const timedOut = new Promise<never>((_, reject) => {
    rejectTimeout = reject;
  });
  const poke = (): void => {
    if (controller.signal.aborted) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      const err = new HubTimeoutError(
        `no response from ${hubUrl} for ${timeoutMs} ms (timed out; set LORALAB_HUB_TIMEOUT_MS or timeoutMs to wait longer)`,
      );
      controller.abort(err);
      rejectTimeout(err);
    }, timeoutMs);
  };

  const fetchFn: typeof fetch = async (input, init) => {
    poke();
    const signal = init?.signal ? eitherSignal(init.signal, controller.signal) : controller.signal;
    const res = await fetch(input, { ...init, signal });
    poke();
    return trackBody(res, poke);
  };

  poke();
  try {
    return await Promise.race([work(fetchFn), timedOut]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    // Also releases responses the library never consumed (e.g. its `Range: bytes=0-0` probes).
    controller.abort(new Error("resolveModel finished"));
  }
}

/** The same response, with `onProgress` called for every body chunk. */
function trackBody(res: Response, onProgress: () => void): Response {
  if (res.body === null || res.status < 200 || [204, 205, 304].includes(res.status)) return res;
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        onProgress();
        ctl.enqueue(chunk);
      },
    }),
  );
  const tracked = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  Object.defineProperty(tracked, "url", { value: res.url });
  Object.defineProperty(tracked, "redirected", { value: res.redirected });
  return tracked;
}

/** One readable line from an error and its causes: "fetch failed: connect ECONNREFUSED 127.0.0.1:9". */
function describe(e: unknown): string {
  if (e instanceof HubApiError) {
    const hint =
      e.statusCode === 401 || e.statusCode === 403
        ? " (repository not found, or private/gated: set HF_TOKEN to a token with access)"
        : e.statusCode === 404
          ? " (check the model id and revision)"
          : "";
    return `HTTP ${e.statusCode}: ${e.message}${hint}`;
  }
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 6; depth++) {
    if (!(cur instanceof Error)) {
      parts.push(String(cur));
      break;
    }
    if (cur instanceof HubTimeoutError) return cur.message;
    const code = (cur as { code?: unknown }).code;
    let msg = cur.message;
    if (typeof code === "string" && !msg.includes(code)) msg = msg ? `${code} ${msg}` : code;
    if (msg && !parts.some((p) => p.includes(msg))) parts.push(msg);
    cur = cur.cause;
  }
  return parts.join(": ") || String(e);
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

/** Aborts when either signal does (AbortSignal.any, written out: not every @types/node in the tree declares it). */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const both = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) both.abort(s.reason);
    else s.addEventListener("abort", () => both.abort(s.reason), { once: true });
  }
  return both.signal;
}
