/**
 * The pieces of Python's string and float semantics that sacrebleu's scores depend on.
 * JavaScript differs from Python in each of them just enough to move a score or a
 * printed digit, so the BLEU and chrF modules use these instead of the JS built-ins.
 */

/** Code units that Python's str.isspace() accepts (all are in the BMP). JS `\s` differs:
 * it includes U+FEFF and lacks U+001C–U+001F and U+0085. */
const PY_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
  0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

const NON_WHITESPACE_RUN = /[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;

/** Python's `s.split()`: the runs of non-whitespace. */
export function pySplit(s: string): string[] {
  return s.match(NON_WHITESPACE_RUN) ?? [];
}

/** Python's `s.rstrip()`. A loop, because a `\s+$` regex is quadratic on long inner runs. */
export function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_WHITESPACE.has(s.charCodeAt(end - 1))) end--;
  return end === s.length ? s : s.slice(0, end);
}

/** Python indexes strings by code point, JS by UTF-16 unit: n-grams over characters need this. */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

/**
 * Python's `f"{x:.{digits}f}"`. Both round the exact binary value, but on an exact tie
 * (1.25 to one digit, 0.0625 to three) Python rounds half to even where toFixed rounds up.
 */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const abs = Math.abs(x);
  if (abs >= 1e21) return sign + BigInt(abs).toString() + (digits > 0 ? "." + "0".repeat(digits) : "");
  const rounded = abs.toFixed(digits);
  // toFixed(100) is the exact decimal expansion of any double this size that can sit on a tie.
  const exact = abs.toFixed(100);
  const cut = exact.indexOf(".") + 1 + digits;
  if (!/^50*$/.test(exact.slice(cut))) return sign + rounded;
  const truncated = exact.slice(0, digits > 0 ? cut : cut - 1);
  const lastDigit = Number(truncated[truncated.length - 1]);
  return sign + (lastDigit % 2 === 0 ? truncated : rounded);
}

/**
 * Python's built-in `sum()` over floats. Since CPython 3.12 it is compensated (Neumaier),
 * which can change the last bit of BLEU's mean log precision.
 */
export function pySum(values: readonly number[]): number {
  let sum = 0;
  let compensation = 0;
  for (const x of values) {
    const t = sum + x;
    compensation += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
    sum = t;
  }
  return compensation !== 0 && Number.isFinite(compensation) ? sum + compensation : sum;
}
