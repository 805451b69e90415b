/**
 * Canonical JSON and content digests: the identity of plain data. Keys are sorted at every level, so two objects
 * holding the same values give the same text however they were built; anything JSON cannot carry faithfully
 * (a function, a class instance, undefined in a list, NaN) is refused with the path to it, because a digest of a
 * lossy rendering would call different things equal.
 */
import { createHash } from "node:crypto";
import { describeValue } from "./check.js";
import { UserError } from "./errors.js";

function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Why `value` is not plain JSON data, naming the path to the first offending part (`data.rows[3].fn`), or undefined. */
export function notPlainData(value: unknown, at = "value"): string | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `${at} is ${value} (not a finite number)`;
  if (typeof value === "function") return `${at} is a function (a closure cannot be sent to another process)`;
  if (typeof value !== "object") return `${at} is ${describeValue(value)} (${typeof value})`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (value[i] === undefined) return `${at}[${i}] is undefined`;
      const why = notPlainData(value[i], `${at}[${i}]`);
      if (why) return why;
    }
    return undefined;
  }
  if (!isPlainObject(value)) return `${at} is a ${value.constructor?.name ?? "non-plain object"} (expected plain data)`;
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const why = notPlainData(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`);
    if (why) return why;
  }
  return undefined;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]));
}

/** The canonical JSON text of plain data (sorted keys, no spaces); `what` names the value in the error. */
export function canonicalJson(value: unknown, what = "value"): string {
  const why = notPlainData(value, what);
  if (why) throw new UserError(why);
  return JSON.stringify(sortKeys(value));
}

/** The sha256 (hex) of the canonical JSON of `value`. */
export function digestOf(value: unknown, what = "value"): string {
  return createHash("sha256").update(canonicalJson(value, what)).digest("hex");
}
