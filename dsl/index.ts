/**
 * loralab's DSL: `import { model, dataset, sweep, compare } from "loralab"`.
 *
 *   const base = await model("path/to/hf-model");
 *   const ds = dataset("sotu", { president: "Barack Obama" });
 *   const run = await base.lora({ r: 8, alpha: 16 }).train(ds, { epochs: 3, lr: 2e-4 });
 *   await run.model.eval(test, ["perplexity"]);
 */
export {
  model,
  Model,
  LoraModel,
  FullModel,
  LoraBuilder,
  FullBuilder,
  ModelView,
  EvalResult,
  type EvalMetrics,
  type Metric,
  type GenerateOptions,
  type EvalOptions,
  type TrainedRun,
} from "./model.js";
export { Run, TrainingInterrupted, lastRun, REGISTRY_SAVE_STEPS, type TrainOptions, type TrainedModel } from "./run.js";
export { type DataInput } from "./data.js";
export { dataset, Dataset } from "./data.js";
export { sweep, expandSpace, SweepResult, type SweepSpace, type SweepOptions, type SweepStudy } from "./sweep.js";
export type { TrialRecord } from "../src/study/trial.js";
export type { ConfigSummary } from "../src/study/summary.js";
export { compare, Comparison, METHOD_DEFAULTS, type CompareOptions, type Method, type RunBuilder } from "./compare.js";
export { runs, loadRun, RecordedRun, type ResumeOptions } from "./runs.js";
export { lossChart, tabulate } from "./presentation.js";
export { display, type Display, type DisplayHandle } from "./script-display.js";
export { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
export { UserError } from "../src/core/errors.js";
export { saveChart, chartToPng, chartToSvg } from "../src/charts/render.js";
export { corpusBleu, sentenceBleu } from "../src/metrics/bleu.js";
export { corpusChrf, sentenceChrf } from "../src/metrics/chrf.js";
