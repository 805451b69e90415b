/**
 * 16-bit floats kept as their bits (Uint16Array) and widened to float32 when needed. Both widenings are exact:
 * bf16 is the upper half of a float32; every f16 (subnormals, ±Inf and NaN included) is a float32 value.
 */
export type HalfFormat = "f16" | "bf16";

/** f16 bits → float32 bits: rebias the exponent 15 → 127 and move the 10-bit mantissa up by 13. */
function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return sign | 0x7f800000 | (mantissa << 13); // ±Inf, NaN (payload kept)
  if (exponent !== 0) return sign | ((exponent + 112) << 23) | (mantissa << 13);
  if (mantissa === 0) return sign; // ±0
  // Subnormal m·2⁻²⁴: shift the leading 1 up to the implicit bit, lowering the exponent once per shift.
  let e = 113;
  while (!(mantissa & 0x400)) {
    mantissa <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mantissa & 0x3ff) << 13);
}

export function widenHalf(bits: Uint16Array, format: HalfFormat): Float32Array {
  const out = new Uint32Array(bits.length);
  if (format === "bf16") for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  else for (let i = 0; i < bits.length; i++) out[i] = f16ToF32Bits(bits[i]!);
  return new Float32Array(out.buffer);
}
