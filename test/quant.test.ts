/**
 * NF4 storage (src/quant): the code table against its construction and the published table, the nibble order,
 * the round-trip error bound, ties, double quantization's storage arithmetic — and codes, bytes and values identical
 * to test/reference/nf4_reference.py, the quantizer written from the QLoRA paper in numpy/torch.
 */
import { before, after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { UserError } from "../src/core/errors.js";
import { NF4_VALUES, deriveNormalFloat4, standardNormalQuantile } from "../src/quant/normal-float.js";
import { DYNAMIC_MAP } from "../src/quant/dynamic-map.js";
import { packNibbles, unpackNibbles } from "../src/quant/nibbles.js";
import { NF4_BOOK, dequantizeNF4, nf4BitsPerParameter, nf4Bytes, nf4Scales, quantizeNF4, type NF4Data } from "../src/quant/nf4.js";
import type { QuantizedScales } from "../src/quant/double-quant.js";
import { tempDir } from "./helpers/paths.js";
import { torchAvailable } from "./helpers/reference.js";
import { base64Bytes, base64Float32, gaussian, runNf4Reference, writeFloat32, type Nf4Result } from "./helpers/nf4-reference.js";

/** The next float32 after the (nonzero) float32 x towards +∞ (dir 1) or −∞ (dir −1). */
function nextFloat32(x: number, dir: 1 | -1): number {
  const bits = new Int32Array(Float32Array.of(x).buffer);
  bits[0]! += x > 0 ? dir : -dir;
  return new Float32Array(bits.buffer)[0]!;
}

/** Half the widest gap between neighbours of an ascending table: the worst rounding error, in units of absmax. */
function widestHalfGap(table: Float32Array): number {
  let gap = 0;
  for (let i = 1; i < table.length; i++) gap = Math.max(gap, table[i]! - table[i - 1]!);
  return gap / 2;
}

/** Blocks of 64 whose scaled values sit exactly on, just above and just below every float32 midpoint of the table. */
function tieBlocks(): Float32Array {
  const bounds = [...NF4_BOOK.bounds];
  const block = [1, ...bounds, ...bounds.map((b) => nextFloat32(b, 1)), ...bounds.map((b) => nextFloat32(b, -1))];
  block.push(...bounds.map((b) => -b), 0, 0, 0); // mirrored midpoints (not ties: NF4 is asymmetric) and zeros
  assert.equal(block.length, 64);
  // absmax 1 and 2 scale exactly; absmax 3 rounds, and must round the same way as the reference.
  return Float32Array.from([1, 2, 3].flatMap((m) => block.map((v) => v * m)));
}

const REFERENCE_INPUTS: { name: string; values: () => Float32Array; blocksize?: number; doubleQuant?: boolean }[] = [
  { name: "N(0,1), 100 blocks", values: () => gaussian(6400, 1) },
  { name: "odd length 1001 (partial last block, half-filled last byte)", values: () => gaussian(1001, 2, 0.02) },
  { name: "values on, above and below every float32 midpoint (ties)", values: tieBlocks },
  { name: "heavy tails (cubes of N(0,1)), zero blocks", values: () => gaussian(640, 3).map((v, i) => (i < 128 ? 0 : v * v * v)) },
  { name: "blocksize 128", values: () => gaussian(5000, 4), blocksize: 128 },
  {
    name: "double quantization, 3 full scale blocks and a partial one",
    values: () => gaussian(64 * (256 * 3 + 17), 5, 0.05),
    doubleQuant: true,
  },
  { name: "double quantization, odd length", values: () => gaussian(64 * 300 + 7, 6), doubleQuant: true },
];

const hasTorch = torchAvailable();
const skip = hasTorch ? false : "needs Debian's python3-torch and python3-numpy";
const work = tempDir("quant");
let results: Record<string, Nf4Result> = {};

before(() => {
  if (!hasTorch) return;
  const cases = REFERENCE_INPUTS.map((c, i) => ({
    name: c.name,
    kind: "quantize" as const,
    values: writeFloat32(path.join(work, `values-${i}.f32`), c.values()),
    blocksize: c.blocksize ?? 64,
    double_quant: c.doubleQuant ?? false,
  }));
  results = runNf4Reference([{ name: "tables", kind: "tables" }, ...cases], work);
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

function referenceResult(name: string): Nf4Result {
  const r = results[name]!;
  assert.equal(r.error, undefined, `${name}: reference failed: ${r.error}`);
  return r;
}

test("NF4 values: derived from quantiles of N(0,1) as bitsandbytes derives them, bit for bit the published table", () => {
  assert.deepEqual([...deriveNormalFloat4()], [...NF4_VALUES]);
  assert.equal(NF4_VALUES.filter((v) => v < 0).length, 7);
  assert.equal(NF4_VALUES.filter((v) => v > 0).length, 8);
  assert.ok(NF4_VALUES.includes(0) && NF4_VALUES[0] === -1 && NF4_VALUES[15] === 1);
});

test("NF4 values: the construction kept in double is within 1.1e-7 of the table", () => {
  const exact = deriveNormalFloat4(undefined, "double");
  const gap = Math.max(...[...exact].map((v, i) => Math.abs(v - NF4_VALUES[i]!)));
  assert.ok(gap > 0 && gap < 1.1e-7, `max difference ${gap}`);
});

test("standard normal quantile: Φ⁻¹ at known points", () => {
  assert.ok(Math.abs(standardNormalQuantile(0.975) - 1.959963984540054) < 1e-14);
  assert.ok(Math.abs(standardNormalQuantile(0.5)) < 1e-16);
  assert.ok(Math.abs(standardNormalQuantile(0.0227501319481792) + 2) < 1e-13);
  assert.throws(() => standardNormalQuantile(1), RangeError);
});

test("packing: element 2j in the high nibble of byte j, 2j+1 in the low one; an odd count leaves a zero low nibble", () => {
  assert.deepEqual([...packNibbles(Uint8Array.of(1, 2, 3))], [0x12, 0x30]);
  assert.deepEqual([...packNibbles(Uint8Array.of(15, 0, 0, 15))], [0xf0, 0x0f]);
  assert.deepEqual([...unpackNibbles(Uint8Array.of(0xab, 0xc0), 3)], [0xa, 0xb, 0xc]);
  assert.throws(() => unpackNibbles(Uint8Array.of(1), 3), /3 codes need 2 bytes, got 1/);
});

test("packing: every byte unpacks to two codes and packs back to itself", () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(packNibbles(unpackNibbles(bytes, 512)), bytes);
});

test("NF4 round trip: every value returns as the NF4 value nearest to x/absmax, times absmax (error ≤ half a gap)", () => {
  const values = gaussian(64 * 50 + 37, 11, 0.03);
  const q = quantizeNF4(values);
  const back = dequantizeNF4(q);
  const scales = nf4Scales(q);
  const codes = unpackNibbles(q.packed, values.length);
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const m = scales[Math.floor(i / 64)]!;
    const s = values[i]! / m;
    const nearest = Math.min(...[...NF4_VALUES].map((v) => Math.abs(s - v)));
    assert.ok(Math.abs(s - NF4_VALUES[codes[i]!]!) <= nearest + 1e-7, `value ${i}: code ${codes[i]} is not the nearest`);
    assert.equal(back[i], Math.fround(NF4_VALUES[codes[i]!]! * m));
    worst = Math.max(worst, Math.abs(values[i]! - back[i]!) / m);
  }
  const bound = widestHalfGap(NF4_VALUES); // 0.1519, between −1 and −0.696
  assert.ok(Math.abs(bound - 0.1519) < 1e-4);
  assert.ok(worst <= bound + 1e-7, `worst error ${worst}·absmax`);
  assert.ok(worst > 0.1, `worst error ${worst}·absmax: 3237 normal values should come near the bound`);
});

test("NF4 ties: a value on the float32 midpoint of two codes takes the lower one, one ulp above the upper one", () => {
  const codes = unpackNibbles(quantizeNF4(tieBlocks().subarray(0, 64)).packed, 64);
  for (let k = 0; k < 15; k++) {
    assert.equal(codes[1 + k], k, `on midpoint ${k}`);
    assert.equal(codes[1 + 15 + k], k + 1, `above midpoint ${k}`);
    assert.equal(codes[1 + 30 + k], k, `below midpoint ${k}`);
  }
});

test("NF4: the block's largest magnitude comes back exactly; an all-zero block comes back as zeros", () => {
  const values = Float32Array.from({ length: 128 }, (_, i) => (i < 64 ? 0 : Math.sin(i) * 0.1));
  values[100] = -0.37;
  const back = dequantizeNF4(quantizeNF4(values));
  assert.ok(back.subarray(0, 64).every((v) => v === 0));
  assert.equal(back[100], Math.fround(-0.37));
});

test("NF4: a non-finite value or a bad option is a UserError naming it", () => {
  const values = Float32Array.of(0.1, NaN, 0.3);
  assert.throws(
    () => quantizeNF4(values),
    (e) => e instanceof UserError && /quantize nf4: value 1: expected a finite number, got NaN/.test(e.message),
  );
  assert.throws(() => quantizeNF4(Float32Array.of(1), { blocksize: 48 }), /nf4 options: blocksize: expected one of 32, 64, .*4096, got 48/);
  assert.throws(() => quantizeNF4(Float32Array.of(1), { doubleQuant: "yes" as never }), /doubleQuant: expected true or false, got "yes"/);
  assert.throws(() => quantizeNF4(Float32Array.of(1), { blockSize: 64 } as never), /unknown option "blockSize"/);
});

test("storage: 4 + 32/64 = 4.5 bits/param; with double quantization 4 + 8/64 + 32/(64·256) ≈ 4.127 (the paper's arithmetic)", (t) => {
  const n = 64 * 256 * 8; // whole blocks at both levels
  const values = gaussian(n, 12);
  const plain = quantizeNF4(values);
  const dq = quantizeNF4(values, { doubleQuant: true });
  assert.equal(nf4Bytes(plain), n / 2 + (4 * n) / 64);
  assert.equal(nf4BitsPerParameter(plain), 4.5);
  assert.equal(nf4Bytes(dq), n / 2 + n / 64 + (4 * n) / (64 * 256) + 4); // + the one float32 offset
  assert.equal(nf4BitsPerParameter(dq), 4 + 8 / 64 + 32 / (64 * 256) + 32 / n);
  assert.equal(Math.round(nf4BitsPerParameter(dq) * 1000) / 1000, 4.127);
  t.diagnostic(
    `bits/param: nf4 ${nf4BitsPerParameter(plain)}, nf4+dq ${nf4BitsPerParameter(dq).toFixed(5)}; f32/nf4+dq = ${(32 / nf4BitsPerParameter(dq)).toFixed(2)}`,
  );
});

test("double quantization: each scale returns within half a dynamic-map gap of its absmax; values keep the NF4 bound", () => {
  const values = gaussian(64 * 600, 13, 0.02);
  const plain = quantizeNF4(values);
  const dq = quantizeNF4(values, { doubleQuant: true });
  const exact = plain.scales as Float32Array;
  const s = dq.scales as QuantizedScales;
  const restored = nf4Scales(dq);
  let sum = 0;
  for (const v of exact) sum += v;
  assert.equal(s.offset, Math.fround(sum / exact.length));
  const bound = widestHalfGap(DYNAMIC_MAP); // 0.9/64/2: the widest gaps of the dynamic map are near ±1
  for (let i = 0; i < exact.length; i++) {
    const m2 = s.absmax[Math.floor(i / 256)]!;
    assert.ok(Math.abs(restored[i]! - exact[i]!) <= bound * m2 + 1e-9, `scale ${i}: ${restored[i]} vs ${exact[i]}`);
  }
  assert.deepEqual(dq.packed, plain.packed, "double quantization changes the scales only, not the 4-bit codes");
  const back = dequantizeNF4(dq);
  for (let i = 0; i < values.length; i++) {
    assert.ok(
      Math.abs(values[i]! - back[i]!) <=
        widestHalfGap(NF4_VALUES) * restored[Math.floor(i / 64)]! + Math.abs(restored[Math.floor(i / 64)]! - exact[Math.floor(i / 64)]!),
    );
  }
});

test("dynamic map: 256 ascending values from −1 to 1 with an exact 0, 1e-6 resolution near 0", () => {
  assert.equal(DYNAMIC_MAP.length, 256);
  for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_MAP[i]! > DYNAMIC_MAP[i - 1]!);
  assert.equal(DYNAMIC_MAP[0], Math.fround(-0.99296875));
  assert.equal(DYNAMIC_MAP[255], 1);
  assert.equal(DYNAMIC_MAP[127], 0);
  assert.equal(DYNAMIC_MAP[128], Math.fround(5.5e-7));
});

test(
  "tables agree with the reference: NF4 derived by torch, the dynamic map; bitsandbytes' float32-built map within 1 ulp",
  { skip },
  () => {
    const r = referenceResult("tables");
    assert.deepEqual(r.nf4_derived, [...NF4_VALUES]);
    assert.deepEqual(r.nf4_published, [...NF4_VALUES]);
    assert.deepEqual(r.dynamic_map, [...DYNAMIC_MAP]);
    const torch32 = r.dynamic_map_torch32 as number[];
    const ulps = torch32.map((v, i) =>
      Math.abs(new Int32Array(Float32Array.of(v).buffer)[0]! - new Int32Array(Float32Array.of(DYNAMIC_MAP[i]!).buffer)[0]!),
    );
    assert.ok(Math.max(...ulps) <= 1, `max ${Math.max(...ulps)} ulps`);
  },
);

function assertSameAsReference(q: NF4Data, r: Nf4Result): void {
  assert.deepEqual(q.packed, base64Bytes(r.packed), "packed codes");
  if (q.scales instanceof Float32Array) {
    assert.deepEqual(q.scales, base64Float32(r.absmax), "absmax");
  } else {
    assert.deepEqual(q.scales.codes, base64Bytes(r.scale_codes), "8-bit scale codes");
    assert.deepEqual(q.scales.absmax, base64Float32(r.scale_absmax), "scale absmax");
    assert.equal(q.scales.offset, r.scale_offset, "scale offset");
  }
  assert.deepEqual(dequantizeNF4(q), base64Float32(r.dequantized), "dequantized values");
}

for (const c of REFERENCE_INPUTS) {
  test(`identical to the reference (packed bytes, scales, dequantized values): ${c.name}`, { skip }, () => {
    const q = quantizeNF4(c.values(), { blocksize: c.blocksize ?? 64, doubleQuant: c.doubleQuant ?? false });
    assertSameAsReference(q, referenceResult(c.name));
  });
}
