/** The run registry: every recorded run's folder under runs/ (or LORALAB_RUNS_DIR), listed as a table. */
import * as fs from "node:fs";
import * as path from "node:path";
import * as aq from "arquero";
import { UserError } from "../src/core/errors.js";
import { runsDirectory } from "./run.js";

export interface RecordedRun {
  id: string;
  dir: string;
  config: Record<string, unknown>;
  summary: Record<string, unknown>;
  /** Every logged step. */
  metrics: Record<string, number>[];
  /** The PEFT adapter directory, when the run saved one. */
  adapterDir: string | undefined;
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** All recorded runs, newest first, as an arquero table (id, kind, status, steps, final loss, trainable params). */
export function runs(dir?: string): aq.ColumnTable {
  const root = runsDirectory(dir)!;
  const rows = (fs.existsSync(root) ? fs.readdirSync(root) : [])
    .map((id) => ({ id, summary: readJson(path.join(root, id, "summary.json")) }))
    .filter((r): r is { id: string; summary: Record<string, unknown> } => r.summary !== undefined)
    .map(({ id, summary }) => ({
      id,
      kind: summary.kind,
      status: summary.status,
      steps: summary.steps,
      final_loss: summary.final_loss,
      trainable_params: summary.trainable_params,
      started: summary.started,
    }))
    .sort((a, b) => String(b.started).localeCompare(String(a.started)));
  return aq.from(rows);
}

export function loadRun(id: string, dir?: string): RecordedRun {
  const runDir = path.join(runsDirectory(dir)!, id);
  const summary = readJson(path.join(runDir, "summary.json"));
  if (!summary) throw new UserError(`${runDir}: no recorded run with id "${id}" (see runs())`);
  const metricsFile = path.join(runDir, "metrics.jsonl");
  const metrics = fs.existsSync(metricsFile)
    ? fs
        .readFileSync(metricsFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, number>)
    : [];
  const adapterDir = path.join(runDir, "adapter");
  return {
    id,
    dir: runDir,
    config: readJson(path.join(runDir, "config.json")) ?? {},
    summary,
    metrics,
    adapterDir: fs.existsSync(adapterDir) ? adapterDir : undefined,
  };
}
