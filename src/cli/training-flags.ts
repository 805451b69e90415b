/**
 * The `loralab train` flags of the training options, derived from TRAINING_FIELDS (src/train/arguments.ts):
 * one flag per field (a `--x`/`--no-x` pair for switches), parsed and checked with the field's rule.
 */
import { invalid } from "../core/check.js";
import {
  flagNumber,
  resolveTrainingOptions,
  type ResolvedTrainingOptions,
  TRAINING_FIELD_NAMES,
  TRAINING_FIELDS,
  type TrainingFieldName,
  type TrainingOptions,
} from "../train/arguments.js";

type FlagOption = { type: "string" } | { type: "boolean" };

const flagOf = (field: TrainingFieldName) => `--${TRAINING_FIELDS[field].flag}`;

/** The flags as node:util parseArgs options. */
export const trainingFlags: Record<string, FlagOption> = Object.fromEntries(
  TRAINING_FIELD_NAMES.flatMap((name): [string, FlagOption][] => {
    const { flag, flagType } = TRAINING_FIELDS[name];
    return flagType === "switch"
      ? [
          [flag, { type: "boolean" }],
          [`no-${flag}`, { type: "boolean" }],
        ]
      : [[flag, { type: "string" }]];
  }),
);

function valueOf(name: TrainingFieldName, values: Readonly<Record<string, unknown>>): unknown {
  const { flag, flagType, rule } = TRAINING_FIELDS[name];
  if (flagType === "switch") {
    const on = values[flag] === true;
    const off = values[`no-${flag}`] === true;
    if (on && off) throw invalid("", `--no-${flag}`, `no value when --${flag} is given`, true);
    return on ? true : off ? false : undefined;
  }
  const text = values[flag];
  if (typeof text !== "string") return undefined;
  const parsed = flagType === "text" ? text : flagType === "numbers" ? text.split(",").map(Number) : flagNumber(text);
  // The message quotes the text as typed ("1e30"), not the number it became.
  if (!(rule.accepts as (v: unknown) => boolean)(parsed)) throw invalid("", `--${flag}`, rule.expected, text);
  return parsed;
}

/**
 * The training options the flags in `values` give (`given`, for the Trainer), checked each and together, and
 * `resolved` with defaults. With `context` (the model's positions), --seq is also checked against it.
 */
export function trainingOptionsFromFlags(
  values: Readonly<Record<string, unknown>>,
  context?: number,
): { given: TrainingOptions; resolved: ResolvedTrainingOptions } {
  const given: Record<string, unknown> = {};
  for (const name of TRAINING_FIELD_NAMES) {
    const value = valueOf(name, values);
    if (value !== undefined) given[name] = value;
  }
  return { given, resolved: resolveTrainingOptions(given, { where: "", nameOf: flagOf }, context) };
}

/** Help lines: flag, default, what it does. */
export function trainingFlagsHelp(): string[] {
  return TRAINING_FIELD_NAMES.map((name) => {
    const { flag, flagType, default: fallback, doc, rule } = TRAINING_FIELDS[name];
    const metavar = flagType === "numbers" ? "A,B" : flagType === "text" ? "NAME" : rule.expected.includes("integer") ? "N" : "X";
    const usage = flagType === "switch" ? `--${flag} | --no-${flag}` : `--${flag} ${metavar}`;
    const shown = fallback === undefined ? "" : ` (default ${Array.isArray(fallback) ? fallback.join(",") : String(fallback)})`;
    return `  ${usage.padEnd(26)} ${doc}${shown}`;
  });
}
