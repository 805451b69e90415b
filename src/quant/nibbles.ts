/**
 * Two 4-bit codes per byte in bitsandbytes' order: element 2j in the high nibble, element 2j+1 in the low one
 * (its kernels do `q[2j] << 4 | q[2j+1]`). An odd count leaves the last byte's low nibble 0. With the same order,
 * a bitsandbytes `Params4bit` weight (uint8, shape [⌈n/2⌉, 1]) is this packed array byte for byte.
 */
export function packNibbles(codes: Uint8Array): Uint8Array {
  const packed = new Uint8Array(Math.ceil(codes.length / 2));
  for (let j = 0; j < packed.length; j++) packed[j] = ((codes[2 * j]! & 15) << 4) | ((codes[2 * j + 1] ?? 0) & 15);
  return packed;
}

export function unpackNibbles(packed: Uint8Array, length: number): Uint8Array {
  if (packed.length !== Math.ceil(length / 2)) {
    throw new RangeError(`unpackNibbles: ${length} codes need ${Math.ceil(length / 2)} bytes, got ${packed.length}`);
  }
  const codes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const byte = packed[i >> 1]!;
    codes[i] = i & 1 ? byte & 15 : byte >> 4;
  }
  return codes;
}
