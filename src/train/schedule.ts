/**
 * Learning-rate schedules as transformers defines them (get_*_schedule_with_warmup): a multiplier
 * of the peak lr for the update at 0-based step s, with linear warmup over the first `warmup` steps.
 */
export type ScheduleName = "constant" | "linear" | "cosine";
export const SCHEDULES: readonly ScheduleName[] = ["constant", "linear", "cosine"];

export function lrMultiplier(schedule: ScheduleName, step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (schedule === "constant") return 1;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (schedule === "linear") return Math.max(0, 1 - progress);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress))); // half a cosine cycle, as num_cycles = 0.5
}
