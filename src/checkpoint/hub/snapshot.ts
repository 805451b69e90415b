/**
 * A hub model as a local directory: the cached snapshot of the revision when it is complete, else a download
 * into the same cache under an idle timeout, so a dead network never hangs. Every failure is one UserError line
 * naming the model, the cache and the cause.
 */
import { HubApiError } from "@huggingface/hub";
import { UserError } from "../../core/errors.js";
import { IdleTimeoutError, withIdleTimeout } from "../idle-fetch.js";
import { hubRepoDir, isSafeRelative, lookupCache } from "./cache.js";
import { downloadSnapshot } from "./download.js";
import { hubCachePath, hubEndpoint, hubOfflineFromEnv, hubTimeoutMs, hubToken } from "./environment.js";

export interface HubSnapshotOptions {
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
   * Extra repo files to fetch besides the defaults (config, tokenizer and generation files) and the safetensors
   * weights (e.g. "chat_template.jinja"). Files the repo does not have are skipped.
   */
  files?: string[];
}

/** huggingface_hub's validate_repo_id: optional namespace, name ≤ 96 chars of [\w.-], word chars at both ends. */
const REPO_PART = String.raw`[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?`;
const REPO_ID = new RegExp(`^(?:${REPO_PART}/)?${REPO_PART}$`);

/** huggingface_hub's repo-id rules (validate_repo_id). */
export function isHubModelId(ref: string): boolean {
  if (!REPO_ID.test(ref)) return false;
  const name = ref.includes("/") ? ref.slice(ref.indexOf("/") + 1) : ref;
  return name.length <= 96 && !ref.includes("--") && !ref.includes("..") && !ref.endsWith(".git");
}

/**
 * The snapshot directory of hub model `id` at `revision` (default "main", via refs/<revision>; a 40-hex sha is
 * used directly) when the cache has config.json and complete safetensors weights; otherwise the files are
 * downloaded into the cache — unless offline, which is a UserError. Network failures, HTTP errors and the idle
 * timeout are UserErrors too.
 */
export async function hubSnapshot(id: string, options: HubSnapshotOptions = {}): Promise<string> {
  if (!isHubModelId(id)) throw new UserError(`"${id}" is not a valid Hugging Face model id (expected "org/name")`);
  const revision = options.revision ?? "main";
  if (revision.trim() === "" || !isSafeRelative(revision)) throw new UserError(`invalid revision "${revision}" for model "${id}"`);
  const extra = options.files ?? [];
  for (const f of extra) if (!isSafeRelative(f)) throw new UserError(`invalid repo file name "${f}" for model "${id}"`);
  const offline = options.offline ?? hubOfflineFromEnv();
  const timeoutMs = hubTimeoutMs(options.timeoutMs);

  const cacheDir = hubCachePath();
  const storage = hubRepoDir(id, cacheDir);
  const label = revision === "main" ? `model "${id}"` : `model "${id}" at revision "${revision}"`;

  const cached = await lookupCache(storage, revision, extra);
  if (cached.snapshot !== undefined && cached.missing.length === 0) return cached.snapshot;

  if (offline) {
    // Offline, extra files are best effort: config + weights are enough.
    if (cached.essentials) return cached.snapshot!;
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
  const silence = `no response from ${hubUrl} for ${timeoutMs} ms (timed out; set LORALAB_HUB_TIMEOUT_MS or timeoutMs to wait longer)`;
  try {
    return await withIdleTimeout(timeoutMs, silence, (fetchFn) =>
      downloadSnapshot({ id, revision, extra, cacheDir, storage, hubUrl, fetchFn, accessToken: hubToken() }),
    );
  } catch (e) {
    if (e instanceof UserError) throw e;
    // A connection problem should not hide a usable cached snapshot (huggingface_hub falls back too).
    if (cached.essentials && !(e instanceof HubApiError)) return cached.snapshot!;
    throw new UserError(oneLine(`could not download ${label} from ${hubUrl} into the Hugging Face cache (${cacheDir}): ${describe(e)}`), {
      cause: e,
    });
  }
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
    if (cur instanceof IdleTimeoutError) return cur.message;
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
