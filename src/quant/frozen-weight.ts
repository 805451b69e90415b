/**
 * A frozen linear weight [out, in] held in a compact format and widened to float32 only when a layer runs:
 * NF4 (QLoRA's 4-bit NormalFloat) or 16-bit floats. The bytes stay in JavaScript memory, outside the tensor backend
 * (on wasm: outside its 4 GB heap); the backend only ever sees one layer's float32 weight at a time.
 */
import { tf } from "../backend/index.js";
import { f32BitsToBf16, f32BitsToF16 } from "../checkpoint/half-float.js";
import { dequantizeNF4, nf4Bytes, quantizeNF4, type NF4Data, type NF4Options } from "./nf4.js";
import { widenHalf, type HalfFormat } from "./half.js";

/** What `loadModel(…, { quantize })` stores decoder projections as: NF4 (with double quantization: "nf4-dq") or 16-bit floats. */
export const QUANTIZE_FORMATS = ["nf4", "nf4-dq", "f16", "bf16"] as const;
export type QuantizeFormat = (typeof QUANTIZE_FORMATS)[number];

export interface FrozenWeight {
  /** [out, in], as torch.nn.Linear's weight. */
  readonly shape: readonly [number, number];
  /** "nf4", "nf4+dq", "f16" or "bf16". */
  readonly format: string;
  /** Bytes held by this weight. */
  readonly byteLength: number;
  /** A fresh float32 copy, row-major [out, in]. */
  toFloat32(): Float32Array;
}

function checkShape(shape: readonly [number, number], length: number, what: string): void {
  if (!shape.every((d) => Number.isInteger(d) && d > 0) || shape[0] * shape[1] !== length) {
    throw new RangeError(`${what}: shape [${shape.join(", ")}] does not hold ${length} values`);
  }
}

export class NF4Weight implements FrozenWeight {
  constructor(
    readonly shape: readonly [number, number],
    readonly data: NF4Data,
  ) {
    checkShape(shape, data.length, "NF4Weight");
  }

  static quantize(values: Float32Array, shape: readonly [number, number], options?: NF4Options): NF4Weight {
    return new NF4Weight(shape, quantizeNF4(values, options));
  }

  get format(): string {
    return this.data.scales instanceof Float32Array ? "nf4" : "nf4+dq";
  }

  get byteLength(): number {
    return nf4Bytes(this.data);
  }

  toFloat32(): Float32Array {
    return dequantizeNF4(this.data);
  }
}

export class HalfWeight implements FrozenWeight {
  constructor(
    readonly shape: readonly [number, number],
    readonly bits: Uint16Array,
    readonly format: HalfFormat,
  ) {
    checkShape(shape, bits.length, "HalfWeight");
  }

  get byteLength(): number {
    return this.bits.byteLength;
  }

  toFloat32(): Float32Array {
    return widenHalf(this.bits, this.format);
  }
}

/** The weight as a float32 tensor [out, in]; the caller disposes it (or runs inside tf.tidy). */
export function weightTensor(weight: FrozenWeight): tf.Tensor2D {
  return tf.tensor2d(weight.toFloat32(), [weight.shape[0], weight.shape[1]]);
}

/** float32 values → 16-bit patterns, rounded to nearest even (exact for values the format holds, e.g. read from an F16 file). */
export function narrowHalf(values: Float32Array, format: HalfFormat): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const narrow = format === "f16" ? f32BitsToF16 : f32BitsToBf16;
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = narrow(bits[i]!);
  return out;
}

/** A weight [out, in] (row-major float32) stored in `format`. */
export function compactWeight(values: Float32Array, shape: readonly [number, number], format: QuantizeFormat): FrozenWeight {
  if (format === "f16" || format === "bf16") return new HalfWeight(shape, narrowHalf(values, format), format);
  return NF4Weight.quantize(values, shape, { doubleQuant: format === "nf4-dq" });
}
