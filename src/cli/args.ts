import { parseArgs, type ParseArgsConfig } from "node:util";
import { type Check, check, invalid } from "../core/check.js";
import { UserError } from "../core/errors.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** node:util parseArgs with its errors turned into one-line user errors (main() prefixes the command). */
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export function parseCommandArgs<O extends Options>(argv: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    // Some of node's messages span lines (e.g. a value starting with "-"); a user error is one line.
    throw new UserError(
      (e as Error).message
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean)
        .join(" "),
    );
  }
}

export function requireOption(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UserError(`${flag} is required`);
  return value;
}

/** A number flag: `fallback` when absent, else its text as a number that `rule` accepts (the message quotes the text). */
export function numberFlag(flag: string, text: string | undefined, rule: Check<number>, fallback: number): number {
  if (text === undefined) return fallback;
  const n = text.trim() === "" ? NaN : Number(text);
  if (!rule.accepts(n)) throw invalid("", flag, rule.expected, text);
  return n;
}

/** numberFlag with the rule given as a predicate and the words for what it accepts. */
export function parseNumberOption(
  flag: string,
  value: string | undefined,
  fallback: number,
  accepts: (n: number) => boolean = Number.isFinite,
  expected = "a number",
): number {
  return numberFlag(
    flag,
    value,
    check(expected, (v) => typeof v === "number" && accepts(v)),
    fallback,
  );
}

export const isPositiveInt = (n: number) => Number.isInteger(n) && n > 0;
export const isNonNegativeInt = (n: number) => Number.isInteger(n) && n >= 0;
