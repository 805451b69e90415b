/** Paths as users type them, and what is at a path (for code that must tell "missing" from "a file" from "a folder"). */
import { stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

/** "~" and "~/…" → the home directory, as shells and huggingface_hub do; other paths unchanged. */
export function expandHome(p: string): string {
  return p === "~" || p.startsWith("~/") || p.startsWith("~\\") ? join(homedir(), p.slice(1)) : p;
}

/** What `p` is after following symlinks; a dangling link or a missing path is undefined. */
export async function pathKind(p: string): Promise<"file" | "dir" | "other" | undefined> {
  try {
    const s = await stat(p);
    return s.isFile() ? "file" : s.isDirectory() ? "dir" : "other";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") return undefined;
    throw e;
  }
}
