/**
 * Validation of everything a user gives loralab (config files, adapter files, CLI flags, DSL options), with one
 * message shape: `<where>: <field>: expected <what>, got <value>`, e.g.
 * `config.json: hidden_size: expected a positive integer, got -1` or `--lr: expected a positive number, got "fast"`.
 */
import { UserError } from "./errors.js";

/** A predicate together with the words that say what it accepts. */
export interface Check<T> {
  /** What a valid value is, as the message says it: "a positive integer". */
  readonly expected: string;
  accepts(value: unknown): value is T;
}

export function check<T>(expected: string, accepts: (value: unknown) => boolean): Check<T> {
  return { expected, accepts: accepts as (value: unknown) => value is T };
}

/** A value as an error message shows it: JSON where possible, short. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `${value}n`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The one shape of a validation error; `where` (a file, "lora config", a command) may be empty. */
export function invalid(where: string, field: string, expected: string, got: unknown): UserError {
  return new UserError(`${where ? `${where}: ` : ""}${field}: expected ${expected}, got ${describeValue(got)}`);
}

/** Returns `value` if `rule` accepts it, else throws the standard message. */
export function validate<T>(value: unknown, rule: Check<T>, where: string, field: string): T {
  if (!rule.accepts(value)) throw invalid(where, field, rule.expected, value);
  return value;
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

export const finiteNumber: Check<number> = check("a finite number", isNumber);
export const positiveNumber: Check<number> = check("a positive number", (v) => isNumber(v) && v > 0);
export const nonNegativeNumber: Check<number> = check("a non-negative number", (v) => isNumber(v) && v >= 0);
export const positiveInt: Check<number> = check("a positive integer", (v) => Number.isInteger(v) && (v as number) > 0);
export const nonNegativeInt: Check<number> = check("a non-negative integer", (v) => Number.isInteger(v) && (v as number) >= 0);
export const boolean: Check<boolean> = check("true or false", (v) => typeof v === "boolean");
export const string: Check<string> = check("a string", (v) => typeof v === "string");
export const nonEmptyString: Check<string> = check("a non-empty string", (v) => typeof v === "string" && v.length > 0);
export const stringList: Check<string[]> = check("a list of strings", (v) => Array.isArray(v) && v.every((s) => typeof s === "string"));

/** A number in a range; `[0, 1)` style bounds read in the message. */
export function numberIn(min: number, max: number, { minOpen = false, maxOpen = false } = {}): Check<number> {
  const words = `a number in ${minOpen ? "(" : "["}${min}, ${max}${maxOpen ? ")" : "]"}`;
  return check(words, (v) => isNumber(v) && (minOpen ? v > min : v >= min) && (maxOpen ? v < max : v <= max));
}

export function oneOf<const T extends readonly (string | number | boolean)[]>(...values: T): Check<T[number]> {
  const words = values.map((v) => JSON.stringify(v));
  const expected = words.length === 1 ? words[0]! : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
  return check(values.length === 1 ? expected : `one of ${expected}`, (v) => (values as readonly unknown[]).includes(v));
}

export function nullable<T>(rule: Check<T>): Check<T | null> {
  return check(`${rule.expected} or null`, (v) => v === null || rule.accepts(v));
}

export function either<A, B>(a: Check<A>, b: Check<B>, expected = `${a.expected} or ${b.expected}`): Check<A | B> {
  return check(expected, (v) => a.accepts(v) || b.accepts(v));
}

export function listOf<T>(rule: Check<T>, expected = `a list of ${rule.expected.replace(/^an? /, "")}s`): Check<T[]> {
  return check(expected, (v) => Array.isArray(v) && v.every((x) => rule.accepts(x)));
}

/** A plain object whose every value passes `rule` (e.g. PEFT's rank_pattern). */
export function recordOf<T>(rule: Check<T>, expected: string): Check<Record<string, T>> {
  return check(expected, (v) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => rule.accepts(x)));
}

/** A JSON object read field by field, every error naming `where` and the field. */
export class Fields {
  constructor(
    readonly where: string,
    readonly raw: Readonly<Record<string, unknown>>,
  ) {}

  static of(where: string, raw: unknown): Fields {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UserError(`${where}: expected a JSON object`);
    return new Fields(where, raw as Record<string, unknown>);
  }

  has(field: string): boolean {
    return Object.hasOwn(this.raw, field) && this.raw[field] !== undefined && this.raw[field] !== null;
  }

  /** A required field. */
  required<T>(field: string, rule: Check<T>): T {
    if (!this.has(field)) throw invalid(this.where, field, `${rule.expected} (the field is required)`, this.raw[field]);
    return validate(this.raw[field], rule, this.where, field);
  }

  /** An optional field: `fallback` when absent or null. */
  optional<T, F = T>(field: string, rule: Check<T>, fallback: F): T | F {
    return this.has(field) ? validate(this.raw[field], rule, this.where, field) : fallback;
  }

  /** Throws for the first key not in `known` (a misspelt option must not be silently ignored). */
  rejectUnknown(known: Iterable<string>, what = "field"): void {
    const allowed = new Set(known);
    const unknown = Object.keys(this.raw).find((k) => !allowed.has(k));
    if (unknown !== undefined) {
      throw new UserError(`${this.where}: unknown ${what} ${JSON.stringify(unknown)}; known: ${[...allowed].join(", ")}`);
    }
  }
}
