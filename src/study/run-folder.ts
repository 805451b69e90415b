/**
 * One run's folder in the registry, runs/<id>/:
 *
 *   config.json     what was trained (base model, LoRA config, training options)
 *   data.json       the data's recipes (src/data/recipe.ts), so the run can be resumed or repeated
 *   metrics.jsonl   one line per step, appended as training goes
 *   summary.json    status, steps, final loss, parameters; while running also the owner's pid and host
 *   adapter/        the trained adapter in PEFT's format
 *   checkpoints/    checkpoint-N/ folders of the Trainer (a killed run resumes from the newest)
 *
 * Files are written atomically; what a killed writer leaves half-done is settled or removed by settle().
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isAlive, settleDirectory, writeDirectoryAtomic, writeFileAtomic } from "../core/files.js";

/** A temp file of writeFileAtomic (`.name.tmp-<pid>-<hex>`) or a checkpoint being written (`checkpoint-N.tmp-<pid>`). */
const TEMP = /(?:^\..+\.tmp-(\d+)-[0-9a-f]+$)|(?:^checkpoint-\d+\.tmp-(\d+)$)/;
const CHECKPOINT = /^checkpoint-(\d+)$/;

/** Who is writing a run: a run whose owner process is gone was interrupted. */
export interface RunOwner {
  pid: number;
  host: string;
}

export function currentOwner(): RunOwner {
  return { pid: process.pid, host: os.hostname() };
}

/** False only when the owner ran on this machine and its process is gone (another host's processes cannot be seen). */
export function ownerAlive(owner: unknown): boolean {
  const o = owner as Partial<RunOwner> | undefined;
  if (typeof o?.pid !== "number" || o.host !== os.hostname()) return true;
  return o.pid === process.pid || isAlive(o.pid);
}

export function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export class RunFolder {
  constructor(readonly dir: string) {}

  get id(): string {
    return path.basename(this.dir);
  }

  get adapterDir(): string {
    return path.join(this.dir, "adapter");
  }

  get checkpointsDir(): string {
    return path.join(this.dir, "checkpoints");
  }

  private get metricsFile(): string {
    return path.join(this.dir, "metrics.jsonl");
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    await writeFileAtomic(path.join(this.dir, name), `${JSON.stringify(value, null, 2)}\n`);
  }

  readJson(name: string): Record<string, unknown> | undefined {
    return readJson(path.join(this.dir, name));
  }

  appendMetrics(log: object): void {
    fs.appendFileSync(this.metricsFile, `${JSON.stringify(log)}\n`);
  }

  /** Every logged step; a last line cut short by a kill is skipped. */
  readMetrics(): Record<string, number>[] {
    if (!fs.existsSync(this.metricsFile)) return [];
    const logs: Record<string, number>[] = [];
    for (const line of fs.readFileSync(this.metricsFile, "utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, number>);
      } catch {
        // the line a killed process was appending
      }
    }
    return logs;
  }

  /** Rewrites metrics.jsonl with `logs` (a resumed run first drops the steps after its checkpoint). */
  async writeMetrics(logs: readonly object[]): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    await writeFileAtomic(this.metricsFile, logs.map((l) => `${JSON.stringify(l)}\n`).join(""));
  }

  /** Writes the adapter's files (name → bytes) as adapter/, replacing it atomically. */
  async writeAdapter(files: Record<string, Uint8Array>): Promise<void> {
    await writeDirectoryAtomic(this.adapterDir, files);
  }

  /** The newest complete checkpoint-N/ folder in `dir` (default: the run's checkpoints/), if any. */
  latestCheckpoint(dir = this.checkpointsDir): { dir: string; step: number } | undefined {
    return this.checkpoints(dir).at(-1);
  }

  private checkpoints(dir = this.checkpointsDir): { dir: string; step: number }[] {
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .map((name) => ({ name, m: CHECKPOINT.exec(name) }))
      .filter(({ m }) => m !== null)
      .map(({ name, m }) => ({ dir: path.join(dir, name), step: Number(m![1]) }))
      .filter((c) => fs.existsSync(path.join(c.dir, "trainer_state.json")))
      .sort((a, b) => a.step - b.step);
  }

  /** Keeps the newest `keep` checkpoints (a registry run needs only the one it would resume from). */
  pruneCheckpoints(keep = 1): void {
    const all = this.checkpoints();
    for (const c of all.slice(0, Math.max(0, all.length - keep))) fs.rmSync(c.dir, { recursive: true, force: true });
  }

  removeCheckpoints(): void {
    fs.rmSync(this.checkpointsDir, { recursive: true, force: true });
  }

  /** Finishes or undoes what a killed writer left: the adapter's directory swap, temp files, half-written checkpoints. */
  settle(): void {
    settleDirectory(this.adapterDir);
    for (const folder of [this.dir, this.checkpointsDir]) {
      let names: string[];
      try {
        names = fs.readdirSync(folder);
      } catch {
        continue;
      }
      for (const name of names) {
        const m = TEMP.exec(name);
        const pid = Number(m?.[1] ?? m?.[2]);
        if (m && !isAlive(pid)) fs.rmSync(path.join(folder, name), { recursive: true, force: true });
      }
    }
  }
}
