import { closeSync, existsSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

/** A temp name in the same directory as `path`, so the final rename never crosses file systems. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/**
 * Write `data` to `path` so that readers see either the old file or the complete new one, never a
 * partial write: write a temp file beside it, fsync it, rename it over `path`. The temp file is
 * removed if anything fails. (The directory entry itself is not fsynced, so after a power loss the
 * rename may be lost — but never half applied.)
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Synchronous twin of {@link writeFileAtomic}. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  try {
    const fd = openSync(tmp, "wx");
    try {
      const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes a whole directory of files so that `dir` is either the old directory or the complete new one
 * (see {@link replaceDirectory}).
 */
export async function writeDirectoryAtomic(dir: string, files: Record<string, Uint8Array | string>): Promise<void> {
  await replaceDirectory(dir, async (tmp) => {
    for (const [name, data] of Object.entries(files)) {
      const fh = await open(join(tmp, name), "wx");
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  });
}

/*
 * Replacing a directory takes two renames (old aside, new in), and a process killed between them would leave no
 * directory at all. So every stage of a replacement has a recognisable sibling name carrying the writer's pid:
 *   .<name>.loralab-new-<pid>-<tag>    being filled (incomplete)
 *   .<name>.loralab-ready-<pid>-<tag>  complete, not yet in place
 *   .<name>.loralab-old-<pid>-<tag>    the previous directory, moved aside
 * and settleDirectory() finishes what a dead writer left: the ready one goes in if the directory is missing (else
 * the old one comes back), and whatever else a dead writer left is removed.
 */
type Stage = "new" | "ready" | "old";
const STAGE = /^\.(.+)\.loralab-(new|ready|old)-(\d+)-([0-9a-f]+)$/;

function stagePath(dir: string, stage: Stage, tag: string): string {
  return join(dirname(dir), `.${basename(dir)}.loralab-${stage}-${process.pid}-${tag}`);
}

/** True while process `pid` exists on this machine (EPERM: it exists but belongs to someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Test hook: a pause between moving the old directory aside and moving the new one in (the window a kill must survive). */
function swapDelayMs(): number {
  return Number(process.env.LORALAB_TEST_SWAP_DELAY_MS ?? 0) || 0;
}

/**
 * Replaces `dir` with a directory that `fill(tmp)` writes (fsyncing its files), so that readers — and a process
 * started after a kill at any moment — see either the old directory or the complete new one.
 */
export async function replaceDirectory(dir: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  settleDirectory(dir);
  const tag = randomBytes(4).toString("hex");
  const fresh = stagePath(dir, "new", tag);
  const ready = stagePath(dir, "ready", tag);
  const old = stagePath(dir, "old", tag);
  try {
    await mkdir(fresh);
    await fill(fresh);
    await rename(fresh, ready);
    const exists = await stat(dir).then(
      () => true,
      () => false,
    );
    if (exists) await rename(dir, old);
    if (exists && swapDelayMs() > 0) await new Promise((resolve) => setTimeout(resolve, swapDelayMs()));
    await rename(ready, dir);
    if (exists) await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(fresh, { recursive: true, force: true });
    await rm(ready, { recursive: true, force: true });
    if (existsSync(old) && !existsSync(dir)) renameSync(old, dir);
    throw e;
  }
}

/**
 * Finishes or undoes a replacement of `dir` that a killed process left half done, and removes what dead writers
 * left behind. Cheap when there is nothing to do (one readdir); loaders call it before reading `dir`.
 */
export function settleDirectory(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dirname(dir));
  } catch {
    return; // no parent: nothing to settle
  }
  const leftovers = names
    .map((name) => ({ name, m: STAGE.exec(name) }))
    .filter(({ m }) => m !== null && m[1] === basename(dir) && !isAlive(Number(m[3])))
    .map(({ name, m }) => ({ path: join(dirname(dir), name), stage: m![2] as Stage, mtime: statSync(join(dirname(dir), name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  if (!existsSync(dir)) {
    const back = leftovers.find((l) => l.stage === "ready") ?? leftovers.find((l) => l.stage === "old");
    if (back) {
      renameSync(back.path, dir);
      leftovers.splice(leftovers.indexOf(back), 1);
    }
  }
  for (const l of leftovers) rmSync(l.path, { recursive: true, force: true });
}
