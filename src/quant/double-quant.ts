/**
 * Double quantization (QLoRA §3): the float32 absmax of every NF4 block is itself quantized, as bitsandbytes'
 * `quantize_4bit(compress_statistics=True)` does: subtract their mean (the "offset"), then quantize blockwise to
 * 8 bits with the dynamic map, blocks of 256. Per parameter that is 8/64 + 32/(64·256) bits of scales instead of
 * 32/64 — 4.127 bits per parameter in all instead of 4.5.
 */
import { DYNAMIC_MAP } from "./dynamic-map.js";
import { codebook, dequantizeBlockwise, quantizeBlockwise, type Codebook } from "./blockwise.js";

/** The NF4 block scales, 8-bit. `map` is the codebook the codes index (DYNAMIC_MAP, or a checkpoint's own). */
export interface QuantizedScales {
  readonly codes: Uint8Array;
  /** Absmax of each block of `blocksize` centred scales, float32. */
  readonly absmax: Float32Array;
  /** The float32 mean that was subtracted. */
  readonly offset: number;
  readonly blocksize: number;
  readonly map: Float32Array;
}

export const SCALE_BLOCKSIZE = 256;

const books = new WeakMap<Float32Array, Codebook>();
function bookOf(map: Float32Array): Codebook {
  let book = books.get(map);
  if (!book) books.set(map, (book = codebook(map)));
  return book;
}

export function quantizeScales(scales: Float32Array, blocksize = SCALE_BLOCKSIZE): QuantizedScales {
  let sum = 0;
  for (const s of scales) sum += s;
  const offset = Math.fround(sum / Math.max(scales.length, 1));
  const centred = scales.map((s) => s - offset); // Float32Array.map rounds each difference to float32
  const { codes, absmax } = quantizeBlockwise(centred, bookOf(DYNAMIC_MAP), blocksize);
  return { codes, absmax, offset, blocksize, map: DYNAMIC_MAP };
}

/** scale = map[code] · absmax + offset, each step in float32 (bitsandbytes' order). */
export function dequantizeScales(q: QuantizedScales): Float32Array {
  const scales = dequantizeBlockwise(q.codes, q.absmax, bookOf(q.map), q.blocksize);
  for (let i = 0; i < scales.length; i++) scales[i] = scales[i]! + q.offset;
  return scales;
}

export function quantizedScalesBytes(q: QuantizedScales): number {
  return q.codes.byteLength + q.absmax.byteLength + 4; // + the float32 offset; the map is shared
}
