/**
 * The 16-bit float formats of safetensors files, to and from float32 bits: IEEE half precision (F16) and bfloat16
 * (BF16, the top half of a float32). Decoding is exact; encoding rounds to nearest, ties to even, as PyTorch does.
 */

/** f16 bit pattern → float32 value, built on first use (256 KiB). Every f16 value is exact in f32. */
let halfTable: Float32Array | undefined;
export function getHalfTable(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    halfTable[h] =
      exp === 0
        ? sign * mant * 2 ** -24 // subnormal (and ±0)
        : exp === 31
          ? mant
            ? NaN
            : sign * Infinity
          : sign * (1024 + mant) * 2 ** (exp - 25);
  }
  return halfTable;
}

/** f32 bits → f16 bits, round to nearest, ties to even. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15; // rebias
  if (e >= 31) return sign | 0x7c00; // too large even before rounding
  if (e >= 1) {
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    // A carry out of the mantissa bumps the exponent, possibly to Inf (0x7c00) — both correct.
    if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    return sign | h;
  }
  // f16 subnormal: value / 2^-24 = (mant | implicit 1) >> shift.
  const shift = 14 - e;
  if (exp === 0 || shift > 24) return sign; // below half the smallest subnormal → ±0
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && h & 1)) h++;
  return sign | h;
}

/** f32 bits → bf16 bits, round to nearest, ties to even. */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // NaN: keep it a (quiet) NaN
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // cannot exceed 2^32 for non-NaN input
}
