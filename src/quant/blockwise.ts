/**
 * Blockwise absmax quantization with a codebook, as bitsandbytes does it for both NF4 (4-bit) and its 8-bit types:
 * the values are cut into blocks of `blocksize` (the last block may be shorter); each block keeps its absmax
 * m = max |x| in float32 and each value becomes the code whose codebook value is nearest to x·(1/m).
 *
 * "Nearest" is decided exactly as bitsandbytes does (its CUDA NF4 tree and its torch backend's `bucketize` agree):
 * against the float32 midpoints of neighbouring codebook values, a value on a midpoint taking the lower code.
 * Arithmetic is float32 throughout, so the codes are the same bits as bitsandbytes computes on the same input.
 * Two corners follow its torch backend where its CUDA kernels differ: an all-zero block gets the code of 0 (CUDA
 * computes 0·(1/0) = NaN and writes code 0; both dequantize to zero), and 8-bit codes use the same midpoint rule
 * (CUDA's 8-bit binary search may pick the other neighbour exactly on a midpoint).
 */

/** A sorted codebook (at most 256 values) with the float32 midpoints that decide between neighbours. */
export interface Codebook {
  readonly values: Float32Array;
  readonly bounds: Float32Array;
}

export function codebook(values: Float32Array): Codebook {
  if (values.length < 2 || values.length > 256) throw new RangeError(`codebook: expected 2 to 256 values, got ${values.length}`);
  for (let i = 1; i < values.length; i++) {
    if (!(values[i]! > values[i - 1]!)) throw new RangeError(`codebook: values must be strictly ascending (at index ${i})`);
  }
  const bounds = new Float32Array(values.length - 1);
  for (let i = 0; i < bounds.length; i++) bounds[i] = (values[i]! + values[i + 1]!) / 2;
  return { values, bounds };
}

/** The code of a scaled value: how many midpoints lie strictly below it (binary search). */
export function encode(scaled: number, book: Codebook): number {
  const b = book.bounds;
  let lo = 0;
  let hi = b.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (b[mid]! < scaled) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface Blockwise {
  /** One code per value. */
  readonly codes: Uint8Array;
  /** max |x| of each block, float32. */
  readonly absmax: Float32Array;
}

const blockCount = (length: number, blocksize: number): number => Math.ceil(length / blocksize);

/** Quantizes `values` block by block. An all-zero block keeps absmax 0 and dequantizes to zeros. */
export function quantizeBlockwise(values: Float32Array, book: Codebook, blocksize: number): Blockwise {
  const n = values.length;
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blockCount(n, blocksize));
  for (let b = 0; b < absmax.length; b++) {
    const start = b * blocksize;
    const end = Math.min(start + blocksize, n);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]!));
    absmax[b] = m;
    // float32 reciprocal then float32 product, as bitsandbytes; 1e-38 keeps an all-zero block finite (its values → code of 0).
    const inverse = Math.fround(1 / Math.max(m, 1e-38));
    for (let i = start; i < end; i++) {
      const scaled = Math.min(1, Math.max(-1, Math.fround(values[i]! * inverse)));
      codes[i] = encode(scaled, book);
    }
  }
  return { codes, absmax };
}

/** value = codebook[code] · absmax of its block (one float32 product, as bitsandbytes). */
export function dequantizeBlockwise(codes: Uint8Array, absmax: Float32Array, book: Codebook, blocksize: number): Float32Array {
  const out = new Float32Array(codes.length);
  const table = book.values;
  for (let b = 0; b < absmax.length; b++) {
    const scale = absmax[b]!;
    const end = Math.min((b + 1) * blocksize, codes.length);
    for (let i = b * blocksize; i < end; i++) out[i] = table[codes[i]!]! * scale;
  }
  return out;
}
