/**
 * A Trainer's checkpoint directory, as transformers' Trainer lays out `checkpoint-N/`: the trainable weights (an
 * adapter or a full model.safetensors), the optimizer's moments (optimizer.safetensors) and the trainer's state
 * (trainer_state.json: step, random state, history). Written into a temp sibling and renamed into place, so a
 * killed run leaves the previous checkpoint intact.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors, serializeSafetensors, type TensorToWrite } from "../checkpoint/safetensors.js";
import { check, Fields, finiteNumber, nonNegativeInt, nonNegativeNumber, positiveInt } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";
import { parseAdapterParameter } from "../lora/layer.js";
import type { ResolvedTrainingOptions } from "./arguments.js";
import type { AdamW } from "./optimizer.js";
import type { Trainable } from "./trainable.js";

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
  /**
   * With measureMemory: the most tensor memory the step added on top of what was alive when it began (activations,
   * gradients, transients; tf.profile), and the process's resident set size after it.
   */
  stepPeakBytes?: number;
  rssBytes?: number;
}

export interface EvalLog {
  step: number;
  evalLoss: number;
  evalPerplexity: number;
}

/** What a resumed run needs besides weights and moments. */
export interface TrainerState {
  step: number;
  randomState: number;
  history: StepLog[];
  evals: EvalLog[];
  elapsedSeconds: number;
  /** Threads the run chose under workers "auto" when it first trained (a resumed run keeps them). */
  workers?: number;
}

const STATE_FILE = "trainer_state.json";
const OPTIMIZER_FILE = "optimizer.safetensors";
const MOMENT = /^(.*)\.(exp_avg|exp_avg_sq)$/;

/**
 * A parameter's name in optimizer.safetensors: without the adapter's name (…lora_A.<adapter>.weight →
 * …lora_A.weight, as PEFT's adapter files name it), so a run resumes under another adapter name, in another session.
 */
function portableName(name: string): string {
  const p = parseAdapterParameter(name);
  return p ? `${p.module}.${p.kind}.weight` : name;
}

export async function writeCheckpoint(
  dir: string,
  {
    trainable,
    optimizer,
    state,
    options,
  }: { trainable: Trainable; optimizer: AdamW; state: TrainerState; options: ResolvedTrainingOptions },
): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    await trainable.save(tmp);
    const moments: Record<string, TensorToWrite> = {};
    for (const [key, t] of optimizer.stateTensors()) {
      const [, name, moment] = MOMENT.exec(key)!;
      moments[`${portableName(name!)}.${moment}`] = { shape: t.shape, data: t.dataSync() as Float32Array };
    }
    await writeFileAtomic(path.join(tmp, OPTIMIZER_FILE), serializeSafetensors(moments, { step: String(optimizer.step) }));
    await writeFileAtomic(path.join(tmp, STATE_FILE), `${JSON.stringify({ ...state, args: options }, null, 2)}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Restores the trainable weights and the optimizer's moments from `dir`; returns the trainer's state. */
export async function readCheckpoint(dir: string, trainable: Trainable, optimizer: AdamW): Promise<TrainerState> {
  const file = path.join(dir, STATE_FILE);
  if (!fs.existsSync(file)) throw new UserError(`${file}: not found (not a loralab checkpoint directory)`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const fields = Fields.of(file, json);
  const list = <T>(name: string) => fields.required(name, check<T[]>("a list", Array.isArray));
  const state: TrainerState = {
    step: fields.required("step", nonNegativeInt),
    randomState: fields.required("randomState", finiteNumber),
    history: list<StepLog>("history"),
    evals: list<EvalLog>("evals"),
    elapsedSeconds: fields.required("elapsedSeconds", nonNegativeNumber),
    workers: fields.optional("workers", positiveInt, undefined),
  };
  await trainable.restore(dir);
  const byPortable = new Map(trainable.trainableParameters().map(([name]) => [portableName(name), name]));
  const moments = new Map(
    [...(await readSafetensors(path.join(dir, OPTIMIZER_FILE)))].map(([key, t]) => {
      const m = MOMENT.exec(key);
      return [m ? `${byPortable.get(portableName(m[1]!)) ?? m[1]}.${m[2]}` : key, t] as const;
    }),
  );
  optimizer.loadState(state.step, moments);
  trainable.random.setState(state.randomState);
  return state;
}
