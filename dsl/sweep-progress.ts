/**
 * In the loralab kernel, a declarative sweep shows one output that updates in place (at most every `every`
 * seconds): how many trials are done, reused, running and failed, each trial's step and loss, and the loss
 * curves as they arrive (from this process, local worker processes, or queue workers through job progress).
 */
import { DISPLAY, escapeHtml, type MimeBundle } from "../src/runtime/display.js";
import { kernelDisplay, type KernelDisplayHandle } from "../src/runtime/kernel.js";
import type { StudyEvent } from "../src/study/study.js";
import type { TrialSpec } from "../src/study/trial.js";
import { lossChart } from "./presentation.js";
import { configLabel } from "./sweep-result.js";

type TrialState = "queued" | "running" | "completed" | "reused" | "failed";

interface Row {
  label: string;
  state: TrialState;
  step: number;
  totalSteps: number;
  curve: { step: number; loss: number }[];
  error?: string;
}

export class SweepProgress {
  private readonly rows = new Map<string, Row>();
  private handle: KernelDisplayHandle | undefined;
  private last = 0;

  constructor(
    private readonly name: string,
    private readonly where: string,
    trials: readonly TrialSpec[],
    private readonly every: number,
  ) {
    const seeds = new Set(trials.map((t) => t.seed)).size;
    for (const t of trials) {
      const label = seeds > 1 ? configLabel({ ...t.config, seed: t.seed }) : configLabel(t.config) || `seed=${t.seed}`;
      this.rows.set(t.digest, { label, state: "queued", step: 0, totalSteps: 0, curve: [] });
    }
  }

  on(e: StudyEvent): void {
    const row = this.rows.get(e.type === "recorded" ? e.record.digest : e.digest);
    if (!row) return;
    if (e.type === "started") row.state = "running";
    if (e.type === "cached") Object.assign(row, { state: "reused", curve: e.record.history.map((h) => ({ step: h.step, loss: h.loss })) });
    if (e.type === "failed") Object.assign(row, { state: "failed", error: e.error });
    if (e.type === "completed")
      Object.assign(row, { state: "completed", curve: e.outcome.record.history.map((h) => ({ step: h.step, loss: h.loss })) });
    if (e.type === "step") {
      Object.assign(row, { state: "running", step: e.step, totalSteps: e.totalSteps });
      if (!row.curve.some((p) => p.step === e.step)) row.curve.push({ step: e.step, loss: e.loss });
    }
    this.refresh();
  }

  line(): string {
    const count = (s: TrialState) => [...this.rows.values()].filter((r) => r.state === s).length;
    const done = count("completed") + count("reused");
    return `sweep ${this.name} on ${this.where}: ${done}/${this.rows.size} done${count("reused") ? ` (${count("reused")} reused)` : ""} · ${count("running")} running · ${count("failed")} failed`;
  }

  [DISPLAY](): MimeBundle {
    const rows = [...this.rows.values()];
    const cell = (r: Row) =>
      r.state === "running" && r.totalSteps
        ? `step ${r.step}/${r.totalSteps}, loss ${r.curve.at(-1)?.loss.toFixed(4)}`
        : r.state === "failed"
          ? `failed: ${r.error}`
          : r.state;
    const html = rows
      .map((r) => `<tr><td style="text-align:left">${escapeHtml(r.label)}</td><td style="text-align:left">${escapeHtml(cell(r))}</td></tr>`)
      .join("");
    return {
      "text/plain": [this.line(), ...rows.map((r) => `  ${r.label}: ${cell(r)}`)].join("\n"),
      "text/html": `<div><code>${escapeHtml(this.line())}</code><table>${html}</table></div>`,
      "application/vnd.vegalite.v5+json": lossChart(
        rows.flatMap((r) => r.curve.map((p) => ({ ...p, series: r.label }))),
        `${this.name}: training loss`,
      ),
    };
  }

  private refresh(): void {
    if (this.every <= 0) return;
    const now = performance.now();
    if (this.handle && now - this.last < this.every * 1000) return;
    this.last = now;
    this.handle = this.handle ? this.handle.update(this) : kernelDisplay(this);
  }

  finish(): void {
    this.handle?.update(this);
  }
}
