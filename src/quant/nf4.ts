/**
 * NF4 storage of a weight: 4-bit NormalFloat codes packed two a byte, one absmax per block of 64 (float32, or
 * double-quantized to 8 bits). Round trip error: every value comes back as the NF4 value nearest to x/absmax, times
 * absmax — off by at most half the gap between its two neighbouring NF4 values (≤ 0.152·absmax, between −1 and −0.696).
 */
import { Fields, boolean, oneOf } from "../core/check.js";
import { UserError } from "../core/errors.js";
import { NF4_VALUES } from "./normal-float.js";
import { codebook, quantizeBlockwise } from "./blockwise.js";
import { packNibbles } from "./nibbles.js";
import { dequantizeScales, quantizeScales, quantizedScalesBytes, SCALE_BLOCKSIZE, type QuantizedScales } from "./double-quant.js";

export const NF4_BOOK = codebook(NF4_VALUES);

/** Blocksizes bitsandbytes' 4-bit kernels accept. */
export const NF4_BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const;

export interface NF4Options {
  /** Values per absmax (default 64, as QLoRA). */
  blocksize?: number;
  /** Quantize the absmax constants too (default false). */
  doubleQuant?: boolean;
}

export interface NF4Data {
  readonly length: number;
  readonly blocksize: number;
  /** ⌈length/2⌉ bytes, element 2j in the high nibble of byte j. */
  readonly packed: Uint8Array;
  /** One scale per block: float32, or double-quantized. */
  readonly scales: Float32Array | QuantizedScales;
}

export function nf4Options(raw: unknown, where = "nf4 options"): Required<NF4Options> {
  const fields = Fields.of(where, raw ?? {});
  fields.rejectUnknown(["blocksize", "doubleQuant"], "option");
  return {
    blocksize: fields.optional("blocksize", oneOf(...NF4_BLOCKSIZES), 64),
    doubleQuant: fields.optional("doubleQuant", boolean, false),
  };
}

export function quantizeNF4(values: Float32Array, options: NF4Options = {}): NF4Data {
  const { blocksize, doubleQuant } = nf4Options(options);
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new UserError(`quantize nf4: value ${bad}: expected a finite number, got ${values[bad]}`);
  const { codes, absmax } = quantizeBlockwise(values, NF4_BOOK, blocksize);
  return { length: values.length, blocksize, packed: packNibbles(codes), scales: doubleQuant ? quantizeScales(absmax) : absmax };
}

export function nf4Scales(q: NF4Data): Float32Array {
  return q.scales instanceof Float32Array ? q.scales : dequantizeScales(q.scales);
}

/** Widens to float32, unpacking each byte in place (every blocksize is even, so a byte never straddles two blocks). */
export function dequantizeNF4(q: NF4Data): Float32Array {
  const scales = nf4Scales(q);
  const out = new Float32Array(q.length);
  const bytesPerBlock = q.blocksize / 2;
  for (let b = 0; b < scales.length; b++) {
    const scale = scales[b]!;
    const end = Math.min((b + 1) * bytesPerBlock, q.packed.length);
    for (let j = b * bytesPerBlock; j < end; j++) {
      const byte = q.packed[j]!;
      out[2 * j] = NF4_VALUES[byte >> 4]! * scale;
      out[2 * j + 1] = NF4_VALUES[byte & 15]! * scale; // past the end for an odd length: a typed array ignores it
    }
  }
  return out;
}

/** Bytes held: the packed codes plus the scales (the shared codebooks not counted). */
export function nf4Bytes(q: NF4Data): number {
  return q.packed.byteLength + (q.scales instanceof Float32Array ? q.scales.byteLength : quantizedScalesBytes(q.scales));
}

/** Bytes quantizeNF4 will hold for `length` values (what nf4Bytes gives afterwards), known before quantizing. */
export function nf4ByteLength(length: number, options: NF4Options = {}): number {
  const { blocksize, doubleQuant } = nf4Options(options);
  const blocks = Math.ceil(length / blocksize);
  const scales = doubleQuant ? blocks + 4 * Math.ceil(blocks / SCALE_BLOCKSIZE) + 4 : 4 * blocks;
  return Math.ceil(length / 2) + scales;
}

/** The storage arithmetic of the QLoRA paper: 4 + 32/64 = 4.5 bits/param, with double quantization 4 + 8/64 + 32/(64·256) ≈ 4.127. */
export function nf4BitsPerParameter(q: NF4Data): number {
  return (8 * nf4Bytes(q)) / q.length;
}
