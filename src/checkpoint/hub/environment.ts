/**
 * The Hugging Face hub settings loralab shares with huggingface_hub and transformers, read from the environment
 * the way huggingface_hub reads them (an empty variable counts as unset).
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { HUB_URL } from "@huggingface/hub";
import { invalid } from "../../core/check.js";
import { expandHome } from "../../core/paths.js";

export const DEFAULT_HUB_TIMEOUT_MS = 60_000;

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
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

/** HF_ENDPOINT (a mirror), else huggingface.co; without a trailing slash. */
export function hubEndpoint(): string {
  return (env("HF_ENDPOINT") ?? HUB_URL).replace(/\/+$/, "");
}

/** HF_TOKEN (or the legacy HUGGING_FACE_HUB_TOKEN), for gated and private repos. */
export function hubToken(): string | undefined {
  return env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN");
}

const MS = "a positive number of milliseconds";

/** How long a download may stay silent: `explicit` (the timeoutMs option), else LORALAB_HUB_TIMEOUT_MS, else 60 s. */
export function hubTimeoutMs(explicit: number | undefined): number {
  if (explicit !== undefined) {
    if (!(Number.isFinite(explicit) && explicit > 0)) throw invalid("", "timeoutMs", MS, explicit);
    return explicit;
  }
  const raw = env("LORALAB_HUB_TIMEOUT_MS");
  if (raw === undefined) return DEFAULT_HUB_TIMEOUT_MS;
  const n = Number(raw);
  if (!(Number.isFinite(n) && n > 0)) throw invalid("", "LORALAB_HUB_TIMEOUT_MS", MS, raw);
  return n;
}
