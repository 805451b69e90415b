import { parseArgs, type ParseArgsConfig } from "node:util";
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

export function parseNumberOption(
  flag: string,
  value: string | undefined,
  fallback: number,
  check: (n: number) => boolean = Number.isFinite,
  expected = "a number",
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !check(n)) throw new UserError(`${flag} expects ${expected}, got "${value}"`);
  return n;
}

export const isPositiveInt = (n: number) => Number.isInteger(n) && n > 0;
export const isNonNegativeInt = (n: number) => Number.isInteger(n) && n >= 0;
