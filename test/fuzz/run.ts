/**
 * The fuzzer's worker: `node --import tsx test/fuzz/run.ts SEED COUNT WORKDIR` builds the pristine inputs, then
 * runs COUNT seeded cases in this one process — each case mutates a fresh copy of the inputs and runs what
 * `loralab eval --adapter` runs (load the model, the adapter, the data; perplexity) — and prints one JSON line per
 * case as it starts and as it ends. The test (test/fuzz.test.ts) watches the lines for hangs.
 *
 * A case's verdict: "rejected" (a user error naming one of the case's files), "accepted" (finite numbers), or a
 * failure: "silently accepted" (a mutation that must be rejected went through), "not finite" (a result of NaN/Inf),
 * "internal error" (anything but a user error: the CLI would print a stack), "unclear error" (a user error that
 * names no file or spans lines), "leak" (tensors left behind), "poisoned" (the backend computes differently after).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../../src/backend/index.js";
import { isUserError } from "../../src/core/errors.js";
import { Random } from "../../src/core/random.js";
import { Dataset } from "../../src/data/dataset.js";
import { saveAdapter, loadAdapter } from "../../src/lora/adapter-io.js";
import { PeftModel } from "../../src/lora/peft-model.js";
import { loadModel, type LoadedModel } from "../../src/models/load.js";
import { perplexity } from "../../src/metrics/perplexity.js";
import { shippedModelDir } from "../../src/models/shipped.js";
import { copyFlat, DATA_ROWS, jsonl, MODEL_FILES } from "./files.js";
import { MUTATIONS, type CaseFiles, type Expect } from "./mutations.js";

export type Verdict =
  "rejected" | "accepted" | "silently accepted" | "not finite" | "internal error" | "unclear error" | "leak" | "poisoned";

export interface CaseReport {
  case: number;
  mutation: string;
  what: string;
  expect: Expect;
  verdict: Verdict;
  detail: string;
}

async function pristine(work: string): Promise<CaseFiles> {
  const files = { model: path.join(work, "model"), adapter: path.join(work, "adapter"), data: path.join(work, "data.jsonl") };
  copyFlat(shippedModelDir("tiny-moby"), files.model, MODEL_FILES);
  fs.writeFileSync(files.data, jsonl(DATA_ROWS));
  // A real adapter for this model, with non-zero B so that it changes the numbers.
  const loaded = await loadModel(files.model);
  const peft = PeftModel.create(loaded.model, { r: 8, targets: ["q_proj", "v_proj"] }, { seed: 3 });
  const random = new Random(5);
  for (const [name, p] of peft.trainableParameters()) {
    if (name.includes("lora_B")) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -0.02, 0.02, "float32", random.int(2 ** 31))));
  }
  await saveAdapter(peft, files.adapter);
  loaded.model.dispose();
  return files;
}

/** What `loralab eval --model M [--adapter A] --data D` computes, disposing of everything it made. */
async function evaluate(files: CaseFiles, withAdapter: boolean): Promise<number> {
  let loaded: LoadedModel | undefined;
  try {
    loaded = await loadModel(files.model);
    const model = withAdapter ? await loadAdapter(loaded.model, files.adapter) : loaded.model;
    const examples = Dataset.load(files.data).toExamples(loaded.tokenizer, { vocabSize: loaded.config.vocabSize });
    return perplexity(model, examples).loss;
  } finally {
    loaded?.model.dispose();
  }
}

/** A fixed computation on a model loaded once: it must give the same number after every case. */
function canary(model: LoadedModel): number {
  return tf.tidy(() => {
    const ids = tf.tensor2d([[0, 17, 230, 41, 9, 77, 300, 12]], [1, 8], "int32");
    return model.model.forward(ids).mean().dataSync()[0]!;
  });
}

function names(files: CaseFiles): string[] {
  return [path.basename(files.data), ...fs.readdirSync(files.model), ...fs.readdirSync(files.adapter)];
}

async function main(): Promise<void> {
  const [seed, count, work] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]!];
  await initBackend(process.env.LORALAB_BACKEND || undefined);
  const base = await pristine(path.join(work, "pristine"));
  const reference = await loadModel(base.model);
  const expected = canary(reference);
  const random = new Random(seed);
  // Every kind once per round, in a seeded order, so that any run of at least MUTATIONS.length cases covers them all.
  let round: typeof MUTATIONS = [];
  for (let i = 0; i < count; i++) {
    if (round.length === 0) round = random.shuffle(MUTATIONS);
    const mutation = round.pop()!;
    const dir = path.join(work, `case-${i}`);
    const files = { model: path.join(dir, "model"), adapter: path.join(dir, "adapter"), data: path.join(dir, "data.jsonl") };
    copyFlat(base.model, files.model);
    copyFlat(base.adapter, files.adapter);
    fs.copyFileSync(base.data, files.data);
    const { what, expect } = mutation.apply(files, random);
    process.stdout.write(`${JSON.stringify({ start: i, what })}\n`);
    const tensorsBefore = tf.memory().numTensors;
    let verdict: Verdict;
    let detail = "";
    try {
      const loss = await evaluate(files, mutation.target === "adapter");
      detail = `loss ${loss}`;
      verdict = !Number.isFinite(loss) ? "not finite" : expect === "reject" ? "silently accepted" : "accepted";
    } catch (e) {
      const message = (e as Error).message ?? String(e);
      detail = message;
      if (!isUserError(e)) verdict = "internal error";
      else if (message.includes("\n") || !names(files).some((n) => message.includes(n))) verdict = "unclear error";
      else verdict = "rejected";
    }
    if (tf.memory().numTensors !== tensorsBefore) {
      detail += ` (${tf.memory().numTensors - tensorsBefore} tensors left)`;
      verdict = "leak";
    }
    let after: number | string;
    try {
      after = canary(reference);
    } catch (e) {
      after = (e as Error).message;
    }
    if (after !== expected) {
      detail += ` (the canary gave ${after} instead of ${expected})`;
      verdict = "poisoned";
    }
    const report: CaseReport = { case: i, mutation: mutation.name, what, expect, verdict, detail: detail.slice(0, 400) };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    if (verdict === "poisoned") break;
  }
}

await main();
