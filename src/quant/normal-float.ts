/**
 * NormalFloat4 (NF4), the 4-bit data type of QLoRA (Dettmers et al. 2023, arXiv:2305.14314): 16 values that are
 * quantiles of N(0, 1) scaled to [-1, 1], so each code covers about the same probability mass of normally
 * distributed weights. The halves are asymmetric (7 negative values, 8 positive ones) so that 0 is a code exactly.
 *
 * bitsandbytes builds the table with `create_normal_map(offset=0.9677083)`: the positive values are the quantiles at
 * 8 probabilities evenly spaced from `offset` down to ½ (½ excluded), the negative ones at 7 such probabilities,
 * negated; the whole set is divided by its largest value. `offset` is the mean of 1 − 1/(2·15) and 1 − 1/(2·16).
 */

/** The published NF4 table (bitsandbytes `get_4bit_type("nf4")`, the QLoRA paper's appendix), ascending: code i ↦ NF4_VALUES[i]. */
export const NF4_VALUES: Float32Array = Float32Array.of(
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
);

/** The outermost probability of bitsandbytes' NF4 construction. */
export const NF4_OFFSET = 0.9677083;

/**
 * The NF4 values derived from the construction above, in bitsandbytes' precision: probabilities in float32 (spaced as
 * torch.linspace spaces them), quantiles in double rounded to float32, the division in float32. This reproduces
 * NF4_VALUES bit for bit; `precision: "double"` keeps every step in double (within 1.1e-7 of the table).
 */
export function deriveNormalFloat4(offset = NF4_OFFSET, precision: "float32" | "double" = "float32"): Float32Array | Float64Array {
  const round = precision === "float32" ? Math.fround : (x: number) => x;
  // count probabilities from `offset` towards ½, ½ excluded: torch.linspace(offset, 0.5, count + 1)[:-1]
  const quantilesDown = (count: number) => {
    const start = round(offset);
    const step = round((0.5 - start) / count);
    const half = Math.floor((count + 1) / 2);
    const p = (i: number) => (i < half ? round(start + round(step * i)) : round(0.5 - round(step * (count - i))));
    return Array.from({ length: count }, (_, i) => round(standardNormalQuantile(p(i))));
  };
  const positive = quantilesDown(8);
  const negative = quantilesDown(7).map((q) => -q);
  const top = positive[0]!;
  const values = [...negative, 0, ...positive].map((v) => round(v / top));
  return (precision === "float32" ? Float32Array.from(values) : Float64Array.from(values)).sort();
}

/** Φ(x), the standard normal CDF, from the Taylor series of erf (accurate to a few ulps for |x| ≤ 3.3). */
function standardNormalCdf(x: number): number {
  const z = x / Math.SQRT2;
  const z2 = z * z;
  let term = z; // (−1)ⁿ z^(2n+1) / n!
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= -z2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-18 * Math.abs(sum)) break;
  }
  return 0.5 + sum / Math.sqrt(Math.PI);
}

/** Φ⁻¹(p) for p in [0.001, 0.999], by Newton's method on Φ (converges to the last bit in a few steps). */
export function standardNormalQuantile(p: number): number {
  if (!(p >= 0.001 && p <= 0.999)) throw new RangeError(`standardNormalQuantile: p must be in [0.001, 0.999], got ${p}`);
  let x = 0;
  for (let i = 0; i < 100; i++) {
    const density = Math.exp((-x * x) / 2) / Math.sqrt(2 * Math.PI);
    const step = (standardNormalCdf(x) - p) / density;
    x -= step;
    if (Math.abs(step) <= 1e-16 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}
