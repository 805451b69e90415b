/**
 * The run registry: runs/<id>/ folders (run-folder.ts) under runs/ or LORALAB_RUNS_DIR. The DSL's runs, the CLI's
 * and the workers' trials are recorded and read here, in one way. Reading settles what killed writers left, and
 * shows a run whose process is gone as `interrupted` at the last step its metrics.jsonl holds.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { UserError } from "../core/errors.js";
import { ownerAlive, RunFolder } from "./run-folder.js";

/** The registry folder: the option, else LORALAB_RUNS_DIR, else ./runs; undefined when recording is off (false). */
export function runsDirectory(option?: string | false): string | undefined {
  if (option === false) return undefined;
  return path.resolve(option ?? process.env.LORALAB_RUNS_DIR ?? "runs");
}

/** A timestamp, the name (if any) and a random suffix, so two processes starting runs together never collide. */
export function newRunId(name: string | undefined): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  return `${stamp}-${name ? `${name.replace(/[^A-Za-z0-9_-]+/g, "_")}-` : ""}${randomBytes(3).toString("hex")}`;
}

export type RunStatus = "running" | "completed" | "cancelled" | "diverged" | "interrupted";

/** A recorded run as read back: its files, with the status and steps it really has. */
export interface RecordedRunData {
  id: string;
  dir: string;
  config: Record<string, unknown>;
  /** summary.json, with `status`, `steps` and `final_loss` corrected for a run whose process is gone. */
  summary: Record<string, unknown> & { status: RunStatus };
  /** Every logged step. */
  metrics: Record<string, number>[];
  /** The PEFT adapter directory, when the run saved one. */
  adapterDir: string | undefined;
  /** The checkpoint an interrupted run resumes from. */
  checkpoint: { dir: string; step: number } | undefined;
}

function readFolder(folder: RunFolder): RecordedRunData | undefined {
  const summary = folder.readJson("summary.json");
  if (!summary) return undefined;
  folder.settle();
  const metrics = folder.readMetrics();
  let status = summary.status as RunStatus;
  const corrected: Record<string, unknown> = {};
  if (status === "running" && !ownerAlive(summary.owner)) status = "interrupted";
  if (status === "running" || status === "interrupted") {
    // summary.json is written at the start and the end; while running, the steps are in metrics.jsonl.
    const last = metrics.at(-1);
    Object.assign(corrected, { steps: last?.step ?? 0, final_loss: last?.loss ?? null });
  }
  return {
    id: folder.id,
    dir: folder.dir,
    config: folder.readJson("config.json") ?? {},
    summary: { ...summary, ...corrected, status },
    metrics,
    adapterDir: fs.existsSync(path.join(folder.adapterDir, "adapter_config.json")) ? folder.adapterDir : undefined,
    checkpoint: folder.latestCheckpoint(),
  };
}

/** Every recorded run under `root`, newest first. */
export function listRuns(root: string): RecordedRunData[] {
  const ids = fs.existsSync(root) ? fs.readdirSync(root) : [];
  return ids
    .map((id) => readFolder(new RunFolder(path.join(root, id))))
    .filter((r): r is RecordedRunData => r !== undefined)
    .sort((a, b) => String(b.summary.started).localeCompare(String(a.summary.started)));
}

export function readRun(root: string, id: string): RecordedRunData {
  const found = /^[^/\\]+$/.test(id) && id !== "." && id !== ".." ? readFolder(new RunFolder(path.join(root, id))) : undefined;
  if (!found) throw new UserError(`${path.join(root, id)}: no recorded run with id "${id}" (see runs())`);
  return found;
}
