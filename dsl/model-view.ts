/** What every model handle of the DSL can do — evaluate, generate, show itself — with its own weights active. */
import { inspect } from "node:util";
import * as aq from "arquero";
import type { CausalLM } from "../src/models/causal-lm.js";
import type { LoadedModel } from "../src/models/load.js";
import type { Tokenizer } from "../src/models/tokenizer.js";
import { generate as generateIds, type GenerationOptions } from "../src/models/generation.js";
import { evaluate } from "../src/metrics/evaluate.js";
import { withEvalThreads } from "../src/train/eval-threads.js";
import type { WorkersOption } from "../src/train/parallelism.js";
import { DISPLAY, type MimeBundle } from "../src/runtime/display.js";
import { type DataInput, dataRows, toExamples } from "./data.js";
import { EvalResult, type Metric } from "./evaluation.js";
import { displayedText, htmlKeyValues, textKeyValues } from "./presentation.js";

/** What a view needs of the loaded base model. */
export interface ViewBase {
  readonly loaded: LoadedModel;
  readonly tokenizer: Tokenizer;
}

export interface EvalOptions {
  /** Threads scoring shares of the windows and generations (1: this thread; "auto", the default: the cores, when the evaluation is long enough). */
  workers?: WorkersOption;
}

export interface GenerateOptions extends Partial<Omit<GenerationOptions, "eosTokenIds">> {
  /** Return token ids as well as text. */
  ids?: boolean;
}

/** What every handle can do: evaluate, generate, save — with its own adapter (or none) active. */
export abstract class ModelView {
  /** The loaded base model this view computes with. */
  abstract get base(): ViewBase;

  /** Runs `fn` on the model computing with this view's weights (its adapter alone, or none). */
  protected abstract withWeights<T>(fn: (m: CausalLM) => T): T;

  abstract describe(): [string, unknown][];

  async eval(data: DataInput, metrics: Metric[] | Metric = ["perplexity"], options: EvalOptions = {}): Promise<EvalResult> {
    const loaded = this.base.loaded;
    const input = { examples: () => toExamples(data, loaded.tokenizer, loaded.config.vocabSize), rows: () => dataRows(data) };
    const names = Array.isArray(metrics) ? metrics : [metrics];
    const generation = { tokenizer: loaded.tokenizer, eosTokenIds: loaded.eosTokenIds };
    const model = this.withWeights((m) => m);
    // This view's weights are set around each computation of this thread, not across the awaits, so that other
    // handles of the same base keep theirs meanwhile (a training run that was not awaited, another eval).
    const within = <T>(fn: () => T): T => this.withWeights(fn);
    const { examples, ...scores } = await withEvalThreads(model, { workers: options.workers ?? "auto", within }, (threads) =>
      evaluate(threads, input, names, generation),
    );
    return new EvalResult(scores, examples ? aq.from(examples) : undefined);
  }

  async generate(prompt: string | number[], options: GenerateOptions = {}): Promise<{ text: string; ids: number[] }> {
    const ids = typeof prompt === "string" ? this.base.tokenizer.encode(prompt) : prompt;
    const out = this.withWeights((m) => generateIds(m, ids, { maxNewTokens: 32, ...options, eosTokenIds: this.base.loaded.eosTokenIds }));
    return { text: this.base.tokenizer.decode(out.ids), ids: out.ids };
  }

  [inspect.custom](): string {
    return displayedText(this);
  }

  [DISPLAY](): MimeBundle {
    const rows = this.describe();
    return { "text/plain": textKeyValues(this.constructor.name, rows), "text/html": htmlKeyValues(this.constructor.name, rows) };
  }
}
