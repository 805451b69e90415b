/**
 * `--grid key=v1,v2,…` of `loralab sweep`: a LoRA key as `--lora` spells it (r, alpha, dropout, targets with
 * lists joined by "+", …), a training option by its name or its `loralab train` flag (lr, batchSize or batch,
 * maxSteps or steps, …), or seed. Each value is read and checked as that option's flag would be.
 */
import { invalid } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { LORA_FIELDS, parseLoraSpec } from "../lora/config.js";
import { flagNumber, TRAINING_FIELD_NAMES, TRAINING_FIELDS, type TrainingFieldName } from "../train/arguments.js";

const TRAINING_KEYS = new Map<string, TrainingFieldName>(
  TRAINING_FIELD_NAMES.flatMap((name) => [[name, name] as const, [TRAINING_FIELDS[name].flag, name] as const]),
);
const LORA_KEYS = new Set(Object.entries(LORA_FIELDS).flatMap(([name, f]) => [name, ...("short" in f && f.short ? [f.short] : [])]));

function trainingValue(name: TrainingFieldName, text: string, flag: string): unknown {
  const { flagType, rule } = TRAINING_FIELDS[name];
  const value = flagType === "number" ? flagNumber(text) : flagType === "switch" ? { true: true, false: false }[text] : text;
  if (flagType === "numbers" || !(rule.accepts as (v: unknown) => boolean)(value)) throw invalid("", flag, rule.expected, text);
  return value;
}

/** The grid of `--grid` flags, keys in the order given (a training key under its option name: `--grid steps=…` is maxSteps). */
export function parseGrid(specs: readonly string[]): Record<string, unknown[]> {
  const grid: Record<string, unknown[]> = {};
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--grid: expected key=value,value,…, got "${spec}"`);
    const key = spec.slice(0, eq);
    const texts = spec.slice(eq + 1).split(",");
    const flag = `--grid ${key}`;
    const training = TRAINING_KEYS.get(key);
    let name = key;
    let values: unknown[];
    if (key === "seed") values = texts.map((t) => trainingValue("seed", t, flag));
    else if (LORA_KEYS.has(key)) values = texts.map((t) => parseLoraSpec(`${key}=${t}`, flag)[key as keyof typeof LORA_FIELDS]);
    else if (training) {
      name = training;
      values = texts.map((t) => trainingValue(training, t, flag));
    } else
      throw new UserError(
        `--grid: unknown key "${key}"; expected a LoRA key as --lora takes it (r, alpha, targets, dropout, …), a training option by its name or flag (lr, batch, steps, …) or seed`,
      );
    if (name in grid) throw new UserError(`--grid: "${key}" is given twice`);
    grid[name] = values;
  }
  return grid;
}
