/**
 * The run registry as the DSL shows it: runs() lists every recorded run (runs/ or LORALAB_RUNS_DIR) as a table,
 * loadRun(id) reads one back. A run whose process is gone shows as `interrupted` at its last logged step, and
 * loadRun(id).resume() continues it from its newest checkpoint (src/study/registry.ts reads the folders).
 */
import { nonEmptyString, validate } from "../src/core/check.js";
import { inspect } from "node:util";
import * as path from "node:path";
import * as aq from "arquero";
import { UserError } from "../src/core/errors.js";
import { listRuns, readRun, type RecordedRunData, runsDirectory } from "../src/study/registry.js";
import { RunFolder } from "../src/study/run-folder.js";
import { buildData } from "../src/study/runner.js";
import type { DataRef } from "../src/study/trial.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import { model, type Model, type TrainedRun } from "./model.js";
import type { TrainOptions } from "./run.js";
import { displayedText, htmlKeyValues, runRows, textKeyValues } from "./presentation.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";

/** The registry folder a call names (default runs/ or LORALAB_RUNS_DIR), checked: an options object is a user error. */
function registryDir(where: string, dir: unknown): string {
  return runsDirectory(dir === undefined ? undefined : validate(dir, nonEmptyString, where, "dir"))!;
}

/** All recorded runs, newest first, as an arquero table (id, kind, status, steps, final loss, trainable params, started). */
export function runs(dir?: string): aq.ColumnTable {
  return aq.from(
    listRuns(registryDir("runs()", dir)).map(({ id, summary }) => ({
      id,
      kind: summary.kind,
      status: summary.status,
      steps: summary.steps,
      final_loss: summary.final_loss,
      trainable_params: summary.trainable_params,
      started: summary.started,
    })),
  );
}

export interface ResumeOptions {
  /** The loaded base model to continue on (default: loaded from the run's config.json). */
  base?: Model;
  signal?: AbortSignal;
  liveEvery?: number;
}

/** A recorded run as read back from its folder. */
export class RecordedRun implements RecordedRunData {
  readonly id: string;
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly summary: RecordedRunData["summary"];
  readonly metrics: Record<string, number>[];
  readonly adapterDir: string | undefined;
  readonly checkpoint: RecordedRunData["checkpoint"];

  constructor(data: RecordedRunData) {
    ({ id: this.id, dir: this.dir, config: this.config, summary: this.summary, metrics: this.metrics } = data);
    ({ adapterDir: this.adapterDir, checkpoint: this.checkpoint } = data);
  }

  get status(): string {
    return this.summary.status;
  }

  /**
   * Continues an interrupted (or cancelled) run in its own folder, from its newest checkpoint (or from the start
   * if it had none): the same model, LoRA config, options and data (rebuilt from data.json's recipes and checked
   * against their fingerprints), so it ends as the uninterrupted run would have.
   */
  async resume(options: ResumeOptions = {}): Promise<TrainedRun> {
    const where = `run ${this.id}`;
    if (this.status !== "interrupted" && this.status !== "cancelled")
      throw new UserError(`${where}: its status is ${this.status}; only an interrupted or cancelled run resumes`);
    const recipes = new RunFolder(this.dir).readJson("data.json") as { train?: DataRef; eval?: DataRef } | undefined;
    if (!recipes?.train) throw new UserError(`${where}: no data.json (the run's data was not a dataset or rows); it cannot be resumed`);
    const data = buildData(recipes.train, `${where}: data`);
    const evalData = recipes.eval && buildData(recipes.eval, `${where}: eval data`);
    const base = options.base ?? (await model(String(this.config.base)));
    const given = (this.config.options ?? {}) as TrainOptions;
    const trainOptions: TrainOptions = {
      ...given,
      ...(evalData ? { evalData } : {}),
      ...(typeof this.config.name === "string" ? { name: this.config.name } : {}),
      ...(typeof this.config.checkpointDir === "string" ? { outputDir: this.config.checkpointDir } : {}),
      runsDir: path.dirname(this.dir),
      signal: options.signal,
      liveEvery: options.liveEvery,
    };
    const folder = new RunFolder(this.dir);
    const checkpoint = typeof this.config.checkpointDir === "string" ? folder.latestCheckpoint(this.config.checkpointDir) : this.checkpoint;
    const reopened = { folder, checkpoint, started: String(this.summary.started) };
    if (this.config.kind === "full") return base.full().trainRun(data, trainOptions, reopened);
    return base.lora(this.config.lora as LoraConfigInput).trainRun(data, trainOptions, reopened);
  }

  [inspect.custom](): string {
    return displayedText(this);
  }

  [DISPLAY](): MimeBundle {
    const rows: [string, unknown][] = [
      ...runRows(
        this.id,
        this.status,
        `${this.summary.steps}/${this.summary.total_steps ?? "?"}`,
        typeof this.summary.final_loss === "number" ? this.summary.final_loss : undefined,
      ),
      ["base", this.config.base],
      ["adapter", this.adapterDir ?? "none"],
      ...(this.checkpoint ? [["checkpoint", `step ${this.checkpoint.step}`] as [string, unknown]] : []),
    ];
    return { "text/plain": textKeyValues("Recorded run", rows), "text/html": htmlKeyValues("Recorded run", rows) };
  }
}

export function loadRun(id: string, dir?: string): RecordedRun {
  return new RecordedRun(readRun(registryDir("loadRun()", dir), validate(id, nonEmptyString, "loadRun()", "id")));
}
