/**
 * In the loralab kernel: one output that updates in place, at most every `every` seconds, with a progress line
 * (step/total, loss, tokens/s, ETA) and the loss curve so far. Outside the kernel: nothing.
 */
import { kernelDisplay, type KernelDisplayHandle } from "../src/runtime/kernel.js";
import { DISPLAY, escapeHtml, type MimeBundle } from "../src/runtime/display.js";
import type { StepLog } from "../src/train/trainer.js";

/** What the progress line reads from a run. */
export interface Progress {
  readonly label: string;
  readonly history: readonly StepLog[];
  readonly totalSteps: number;
  readonly status: string;
  chart(): Record<string, unknown>;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const m = Math.floor(seconds / 60);
  return m ? `${m}m ${Math.round(seconds % 60)}s` : `${seconds.toFixed(0)}s`;
}

export class LiveProgress {
  private handle: KernelDisplayHandle | undefined;
  private last = 0;

  constructor(
    private readonly run: Progress,
    private readonly every: number,
  ) {}

  line(): string {
    const h = this.run.history.at(-1);
    if (!h) return `${this.run.label}: starting`;
    const eta = ((this.run.totalSteps - h.step) * h.elapsedSeconds) / h.step;
    return `${this.run.label}: step ${h.step}/${this.run.totalSteps} · loss ${h.loss.toFixed(4)} · ${h.tokensPerSecond.toFixed(0)} tokens/s · ${this.run.status === "running" ? `ETA ${duration(eta)}` : this.run.status}`;
  }

  [DISPLAY](): MimeBundle {
    const line = this.line();
    return {
      "text/plain": line,
      "text/html": `<div><code>${escapeHtml(line)}</code></div>`,
      "application/vnd.vegalite.v5+json": this.run.chart(),
    };
  }

  step(): void {
    if (this.every <= 0) return;
    const now = performance.now();
    if (now - this.last < this.every * 1000) return;
    this.last = now;
    this.handle = this.handle ? this.handle.update(this) : kernelDisplay(this);
  }

  finish(): void {
    this.handle?.update(this);
  }
}
