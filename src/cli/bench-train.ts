/**
 * `loralab bench --mode train`: LoRA vs full fine-tuning on the same model, each in its own process:
 * median optimizer-step time and peak tensor memory (tfjs's own accounting, via tf.profile).
 */
import { initBackend, tf } from "../backend/index.js";
import { UserError } from "../core/errors.js";
import { loadModel } from "../models/load.js";
import { PeftModel } from "../lora/peft-model.js";
import { Random } from "../core/random.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../train/trainable.js";
import { Trainer } from "../train/trainer.js";
import { isPositiveInt, parseCommandArgs, parseNumberOption } from "./args.js";
import { runWorkers, syntheticModel } from "./bench.js";
import { median } from "../core/stats.js";
import { printJson } from "./common.js";

interface TrainBenchResult {
  method: string;
  trainableParams: number;
  medianStepMs: number;
  peakTensorMiB: number;
  steps: number;
}

const MiB = 1024 * 1024;

async function worker(method: string, modelRef: string | undefined, batch: number, seq: number, steps: number): Promise<TrainBenchResult> {
  await initBackend(process.env.LORALAB_BACKEND);
  const model = modelRef ? (await loadModel(modelRef)).model : syntheticModel();
  const random = new Random(1);
  const data = Array.from({ length: batch * 4 }, () => ({
    inputIds: Array.from({ length: seq }, () => random.int(model.config.vocabSize)),
  }));
  let trainable: Trainable;
  if (method === "full") trainable = new FullTrainable(model);
  else if (method.startsWith("lora-r"))
    trainable = new LoraTrainable(PeftModel.create(model, { r: Number(method.slice(6)), targets: ["q_proj", "v_proj"] }));
  else throw new UserError(`unknown method ${method}`);
  const trainer = new Trainer(trainable, data, { maxSteps: steps + 1, batchSize: batch, lr: 1e-4, shuffle: false });
  // tf.profile reports the high-water mark of live tensor bytes: weights, optimizer state and the backward pass.
  const profile = await tf.profile(async () => {
    await trainer.train();
    return [];
  });
  const peak = profile.peakBytes;
  const times = trainer.history.slice(1).map((s, i) => (s.elapsedSeconds - trainer.history[i]!.elapsedSeconds) * 1000);
  const trainableParams = trainable.trainableParameters().reduce((s, [, p]) => s + p.size, 0);
  return { method, trainableParams, medianStepMs: median(times), peakTensorMiB: peak / MiB, steps };
}

export async function trainBench(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    mode: { type: "string" },
    model: { type: "string" },
    methods: { type: "string", default: "full,lora-r8" },
    batch: { type: "string" },
    seq: { type: "string" },
    steps: { type: "string" },
    json: { type: "boolean" },
    worker: { type: "string" },
  });
  const batch = parseNumberOption("--batch", values.batch, 4, isPositiveInt, "a positive integer");
  const seq = parseNumberOption("--seq", values.seq, 64, isPositiveInt, "a positive integer");
  const steps = parseNumberOption("--steps", values.steps, 5, isPositiveInt, "a positive integer");
  if (values.worker) {
    printJson(await worker(values.worker, values.model, batch, seq, steps));
    return 0;
  }
  const rows = runWorkers<TrainBenchResult>(
    values.methods.split(","),
    (method) => [
      "--mode",
      "train",
      "--worker",
      method,
      "--batch",
      String(batch),
      "--seq",
      String(seq),
      "--steps",
      String(steps),
      ...(values.model ? ["--model", values.model] : []),
    ],
    (method) => method,
  );
  const full = rows.find((r) => r.method === "full");
  if (values.json) printJson(rows);
  else {
    console.log(`training step, ${values.model ?? "synthetic llama 4×256"}, batch ${batch} × ${seq} tokens, median of ${steps} steps`);
    for (const r of rows) {
      const vs =
        full && r !== full
          ? `  (${(r.medianStepMs / full.medianStepMs).toFixed(2)}× time, ${(r.peakTensorMiB / full.peakTensorMiB).toFixed(2)}× memory of full)`
          : "";
      console.log(
        `  ${r.method.padEnd(8)} trainable ${r.trainableParams.toLocaleString("en-US").padStart(10)}  step ${r.medianStepMs.toFixed(0).padStart(6)} ms  peak ${r.peakTensorMiB.toFixed(1).padStart(7)} MiB${vs}`,
      );
    }
  }
  return 0;
}
