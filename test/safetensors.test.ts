import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../src/core/errors.js";
import { writeFileAtomic, writeFileAtomicSync } from "../src/core/files.js";
import {
  decodeTensor,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type TensorsToWrite,
  type TensorToWrite,
} from "../src/checkpoint/safetensors.js";
import { readCheckpointTensors, writeShardedCheckpoint } from "../src/checkpoint/sharded.js";
import { INDEX_FILE } from "../src/checkpoint/shard-index.js";

const repoRoot = path.resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
const F = "model.safetensors";

/** Raw safetensors bytes: prefix + header (object → JSON, or literal string/bytes) + data. */
function raw(header: unknown, data: Uint8Array | number = 0, headerLen?: bigint): Uint8Array {
  const h = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const d = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** Assert parsing fails with a UserError whose one-line message names the file and matches `re`. */
function rejects(bytes: Uint8Array, re: RegExp) {
  assert.throws(
    () => parseSafetensors(bytes, F),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
      assert.ok(e.message.startsWith(`${F}: `), e.message);
      assert.ok(!e.message.includes("\n"), e.message);
      assert.match(e.message, re);
      return true;
    },
  );
}

const t = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });

type TestContext = { after: (fn: () => Promise<void>) => void };

/** A fresh temp directory, removed when the test ends. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "loralab-st-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// ---- validation: one malformed file per rule ----

test("rejects a file shorter than 8 bytes", () => rejects(new Uint8Array(5), /5 bytes, shorter than the 8-byte/));
test("rejects a header length over 100 MB", () => rejects(raw({}, 0, 100_000_001n), /exceeds the 100000000-byte limit/));
test("rejects a header length larger than the file", () => rejects(raw("{}", 0, 1000n), /header length 1000 is larger than the 2 bytes/));
test("rejects a UTF-8 byte-order mark before the file", () => {
  const file = raw('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4);
  rejects(
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), file]),
    /^model\.safetensors: file starts with a UTF-8 byte-order mark; expected the 8-byte header length first/,
  );
});
test("rejects a UTF-8 byte-order mark before the header's JSON", () => {
  const header = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')]);
  rejects(
    raw(new Uint8Array(header), 4),
    /^model\.safetensors: header starts with a UTF-8 byte-order mark; expected a JSON object right after the length$/,
  );
});
test("rejects a header that is not UTF-8", () => rejects(raw(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid UTF-8/));
test("rejects a header that is not JSON", () => rejects(raw("{nope"), /header is not valid JSON \(.*\); expected a JSON object/));
/** Malformed headers, one rule each: [what is wrong, file bytes, message]. */
const MALFORMED: [name: string, bytes: () => Uint8Array, message: RegExp][] = [
  ["a header that is an array", () => raw("[1,2]"), /header is an array; expected a JSON object/],
  ["a header that is null", () => raw("null"), /header is null; expected a JSON object/],
  ["__metadata__ that is not an object", () => raw({ __metadata__: "pt" }), /"__metadata__" is "pt"; expected an object/],
  ["__metadata__ with a non-string value", () => raw({ __metadata__: { n: 1 } }), /"__metadata__" key "n" is 1; expected a string value/],
  ["an entry that is not an object", () => raw({ a: 3 }), /tensor "a": entry is 3; expected \{dtype, shape, data_offsets\}/],
  ["an unknown dtype", () => raw({ a: t("F8_E4M3", [1], 0, 1) }, 1), /tensor "a": unknown dtype "F8_E4M3"; expected one of F64, F32/],
  ["a missing dtype", () => raw({ a: { shape: [1], data_offsets: [0, 1] } }, 1), /tensor "a": unknown dtype undefined/],
  ["a dtype named like an object property", () => raw({ a: t("toString", [1], 0, 1) }, 1), /unknown dtype "toString"/],
  [
    "a negative dimension",
    () => raw({ a: t("U8", [2, -1], 0, 0) }),
    /tensor "a": shape \[2,-1\]; expected an array of non-negative integers/,
  ],
  ["a fractional dimension", () => raw({ a: t("U8", [1.5], 0, 0) }), /shape \[1.5\]/],
  ["a shape that is not an array", () => raw({ a: { dtype: "U8", shape: 4, data_offsets: [0, 4] } }, 4), /shape 4; expected an array/],
  [
    "data_offsets with begin > end",
    () => raw({ a: t("U8", [0], 4, 2) }, 4),
    /tensor "a": data_offsets \[4,2\]; expected \[begin, end\].*begin <= end/,
  ],
  ["three data_offsets", () => raw({ a: { dtype: "U8", shape: [1], data_offsets: [0, 1, 2] } }, 1), /data_offsets \[0,1,2\]/],
  ["a data_offset that is a string", () => raw({ a: { dtype: "U8", shape: [1], data_offsets: [0, "1"] } }, 1), /data_offsets \[0,"1"\]/],
  ["no data_offsets", () => raw({ a: { dtype: "U8", shape: [1] } }, 1), /data_offsets undefined/],
];

for (const [name, bytes, message] of MALFORMED) {
  test(`rejects ${name}`, () => rejects(bytes(), message));
}

test("rejects data_offsets past the data section", () =>
  rejects(raw({ a: t("U8", [8], 0, 8) }, 4), /tensor "a": data_offsets \[0,8\] extend past the end of the 4-byte data section/));
test("rejects a shape × dtype size that disagrees with data_offsets", () => {
  assert.throws(() => parseSafetensors(raw({ "a.weight": t("F32", [2, 3], 0, 20) }, 20), F), {
    message: 'model.safetensors: tensor "a.weight": shape [2,3] × F32 = 24 bytes but data_offsets span 20 bytes',
  });
});
test("rejects a gap before the first tensor", () =>
  rejects(raw({ a: t("U8", [2], 2, 4) }, 4), /data bytes \[0,2\) before tensor "a" belong to no tensor/));
test("rejects a gap between tensors", () =>
  rejects(raw({ a: t("U8", [2], 0, 2), b: t("U8", [1], 3, 4) }, 4), /data bytes \[2,3\) before tensor "b" belong to no tensor/));
test("rejects overlapping tensors", () =>
  rejects(raw({ a: t("U8", [3], 0, 3), b: t("U8", [2], 2, 4) }, 4), /tensor "b" \(data_offsets \[2,4\]\) overlaps tensor "a"/));
test("rejects trailing bytes after the last tensor", () =>
  rejects(
    raw({ a: t("U8", [2], 0, 2) }, 3),
    /tensors cover 2 of the 3-byte data section; expected the last tensor to end at the end of the file/,
  ));

test("accepts space padding, out-of-order entries, zero-size and scalar tensors, and an empty file", () => {
  const header =
    JSON.stringify({ b: t("U8", [2], 1, 3), z: t("F32", [0, 4], 3, 3), a: t("U8", [], 0, 1), __metadata__: { k: "v" } }) + "     ";
  const bytes = raw(header, new Uint8Array([7, 8, 9]));
  const f = parseSafetensors(bytes, F);
  assert.deepEqual(f.metadata, { k: "v" });
  assert.deepEqual([...f.tensors.keys()], ["b", "z", "a"]);
  assert.deepEqual(Array.from(decodeTensor(bytes, f.tensors.get("b")!)), [8, 9]);
  assert.deepEqual(Array.from(decodeTensor(bytes, f.tensors.get("a")!)), [7]);
  assert.equal(decodeTensor(bytes, f.tensors.get("z")!).length, 0);
  assert.equal(parseSafetensors(raw("{}"), F).tensors.size, 0);
  assert.equal(parseSafetensors(raw("{}"), F).metadata, undefined);
});

// ---- decoding other dtypes ----

test("decodes integer, bool, F64, F16 and BF16 tensors to float32", () => {
  const data = new Uint8Array(8 + 8 + 4 + 2 + 2 + 4);
  const dv = new DataView(data.buffer);
  dv.setFloat64(0, 0.1, true);
  dv.setBigInt64(8, -5n, true);
  dv.setInt32(16, -7, true);
  dv.setUint8(20, 255);
  dv.setUint8(21, 3); // BOOL [true, true]
  dv.setInt8(22, -128);
  dv.setUint8(23, 200); // I8, U8
  dv.setUint16(24, 0xc100, true); // F16 -2.5
  dv.setUint16(26, 0x3f80, true); // BF16 1.0
  const bytes = raw(
    {
      f64: t("F64", [1], 0, 8),
      i64: t("I64", [1], 8, 16),
      i32: t("I32", [1], 16, 20),
      b: t("BOOL", [2], 20, 22),
      i8: t("I8", [1], 22, 23),
      u8: t("U8", [1], 23, 24),
      f16: t("F16", [1], 24, 26),
      bf16: t("BF16", [1], 26, 28),
    },
    data,
  );
  const f = parseSafetensors(bytes, F);
  const get = (n: string) => Array.from(decodeTensor(bytes, f.tensors.get(n)!));
  assert.deepEqual(get("f64"), [Math.fround(0.1)]);
  assert.deepEqual(get("i64"), [-5]);
  assert.deepEqual(get("i32"), [-7]);
  assert.deepEqual(get("b"), [1, 1]);
  assert.deepEqual(get("i8"), [-128]);
  assert.deepEqual(get("u8"), [200]);
  assert.deepEqual(get("f16"), [-2.5]);
  assert.deepEqual(get("bf16"), [1]);
});

test("decodes every F16 subnormal / special exactly", () => {
  const halves = [0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555];
  const data = new Uint8Array(halves.length * 2);
  halves.forEach((h, i) => new DataView(data.buffer).setUint16(2 * i, h, true));
  const bytes = raw({ h: t("F16", [halves.length], 0, data.length) }, data);
  const out = Array.from(decodeTensor(bytes, parseSafetensors(bytes, F).tensors.get("h")!));
  assert.deepEqual(out, [2 ** -24, 1023 * 2 ** -24, 2 ** -14, 65504, Infinity, -Infinity, -0, Math.fround(0.333251953125)]);
  assert.ok(Object.is(out[6], -0));
});

// ---- writing ----

/** Serialize a single tensor and return its raw element bits (u16 for F16/BF16). */
function halfBits(values: number[], dtype: "F16" | "BF16"): number[] {
  const bytes = serializeSafetensors({ x: { dtype, shape: [values.length], data: new Float32Array(values) } });
  const info = parseSafetensors(bytes, F).tensors.get("x")!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + info.begin, info.end - info.begin);
  return values.map((_, i) => dv.getUint16(2 * i, true));
}

test("F16 encoding rounds to nearest even and handles specials", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00],
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
    [-0, 0x8000],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000],
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002],
    [2 ** -30, 0x0000],
    [2 ** -14, 0x0400],
    [1023.5 * 2 ** -24, 0x0400],
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01],
  ];
  assert.deepEqual(
    halfBits(
      cases.map((c) => c[0]),
      "F16",
    ).map((b) => b.toString(16)),
    cases.map((c) => c[1].toString(16)),
  );
  const [nan] = halfBits([NaN], "F16");
  assert.equal(nan! & 0x7c00, 0x7c00);
  assert.notEqual(nan! & 0x3ff, 0);
});

test("BF16 encoding rounds to nearest even and handles specials", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2.5, 0xc020],
    [1 + 2 ** -8, 0x3f80],
    [1 + 3 * 2 ** -8, 0x3f82],
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [3.4028234663852886e38, 0x7f80],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [-0, 0x8000],
    [2 ** -133, 0x0001],
  ];
  assert.deepEqual(
    halfBits(
      cases.map((c) => c[0]),
      "BF16",
    ).map((b) => b.toString(16)),
    cases.map((c) => c[1].toString(16)),
  );
  const [nan] = halfBits([NaN], "BF16");
  assert.equal(nan! & 0x7f80, 0x7f80);
  assert.notEqual(nan! & 0x7f, 0);
});

test("round trips F32 exactly and F16/BF16 to their representable values", async (t) => {
  const f32 = new Float32Array([1, -2.5, Math.fround(0.1), 3.4e38, -1e-40]);
  const half = new Float32Array([1, -2.5, 65504, 2 ** -24, -0, 0.1]);
  const dir = await tempDir(t);
  const file = path.join(dir, "x.safetensors");
  await writeSafetensors(
    file,
    {
      f32: { shape: [5], data: f32 },
      f16: { dtype: "F16", shape: [2, 3], data: half },
      bf16: { dtype: "BF16", shape: [6], data: half },
    },
    { format: "pt" },
  );
  const m = await readSafetensors(file);
  assert.deepEqual(m.get("f32")!.data, f32);
  assert.equal(m.get("f32")!.dtype, "F32");
  const f16 = m.get("f16")!;
  assert.deepEqual([f16.dtype, f16.shape], ["F16", [2, 3]]);
  assert.deepEqual(Array.from(f16.data), [1, -2.5, 65504, 2 ** -24, -0, 0.0999755859375]);
  assert.deepEqual(Array.from(m.get("bf16")!.data), [1, -2.5, 65536, 2 ** -24, -0, 0.10009765625]);
  assert.deepEqual(parseSafetensors(await readFile(file), file).metadata, { format: "pt" });
});

test("NaN and ±Inf survive encoding to F32, F16 and BF16 (the format can hold them)", () => {
  const specials = new Float32Array([NaN, Infinity, -Infinity]);
  const bytes = serializeSafetensors({
    f32: { shape: [3], data: specials },
    f16: { dtype: "F16", shape: [3], data: specials },
    bf16: { dtype: "BF16", shape: [3], data: specials },
  });
  const parsed = parseSafetensors(bytes, F);
  const decoded = ["f32", "f16", "bf16"].map((name) => Array.from(decodeTensor(bytes, parsed.tensors.get(name)!)));
  assert.deepEqual(decoded, [
    [NaN, Infinity, -Infinity],
    [NaN, Infinity, -Infinity],
    [NaN, Infinity, -Infinity],
  ]);
});

/** A safetensors file holding `tensors`, written into a fresh temp dir removed after the test. */
async function fileWith(t: TestContext, tensors: Record<string, TensorToWrite>): Promise<string> {
  const dir = await tempDir(t);
  const file = path.join(dir, "weights.safetensors");
  await writeSafetensors(file, tensors);
  return file;
}

const NON_FINITE_CASES: [string, TensorToWrite, RegExp][] = [
  ["NaN in F32", { shape: [2, 3], data: new Float32Array([0, 1, 2, 3, NaN, 5]) }, /tensor "w"\[1, 1\]: expected a finite number, got NaN$/],
  [
    "+Inf in F16",
    { dtype: "F16", shape: [4], data: new Float32Array([0, 1e6, 2, 3]) },
    /tensor "w"\[1\]: expected a finite number, got Infinity$/,
  ],
  [
    "-Inf in BF16, counted",
    { dtype: "BF16", shape: [3], data: new Float32Array([-Infinity, -Infinity, NaN]) },
    /tensor "w"\[0\]: expected a finite number, got -Infinity \(and 2 more non-finite values\)$/,
  ],
];
for (const [name, tensor, message] of NON_FINITE_CASES) {
  test(`readSafetensors rejects a float tensor holding non-finite values: ${name}`, async (t) => {
    const file = await fileWith(t, { ok: { shape: [1], data: new Float32Array([1]) }, w: tensor });
    await assert.rejects(readSafetensors(file), (e: unknown) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(e.message.startsWith(`${file}: `), e.message);
      assert.match(e.message, message);
      return true;
    });
  });
}

test("readSafetensors rejects an F64 value beyond float32's range, showing the stored value", async (t) => {
  const bytes = raw('{"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}', new Uint8Array(new Float64Array([1, 1e300]).buffer));
  const dir = await tempDir(t);
  const file = path.join(dir, "f64.safetensors");
  await writeFile(file, bytes);
  await assert.rejects(readSafetensors(file), /tensor "w"\[1\]: expected a finite number, got 1e\+300 \(beyond float32's range\)$/);
});

test("serialization is deterministic, sorted, and space-padded to a multiple of 8", () => {
  const a = { shape: [2], data: new Float32Array([1, 2]) };
  const b = { dtype: "F16" as const, shape: [1], data: new Float32Array([3]) };
  const x = serializeSafetensors({ b, a }, { z: "1", y: "2" });
  const y = serializeSafetensors(
    new Map([
      ["a", a],
      ["b", b],
    ]),
    { y: "2", z: "1" },
  );
  assert.deepEqual(x, y);
  const n = Number(new DataView(x.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const header = new TextDecoder().decode(x.subarray(8, 8 + n));
  assert.match(header, / *$/);
  assert.deepEqual(Object.keys(JSON.parse(header)), ["__metadata__", "a", "b"]);
  const f = parseSafetensors(x, F);
  assert.deepEqual([f.tensors.get("a")!.begin, f.tensors.get("b")!.begin], [8 + n, 8 + n + 8]);
});

test("serialization rejects a shape that does not match the data", () => {
  assert.throws(
    () => serializeSafetensors({ a: { shape: [2, 2], data: new Float32Array(3) } }),
    /tensor "a": shape \[2,2\] has 4 elements but data has 3/,
  );
});

test("readSafetensors reports a missing file as a UserError", async () => {
  await assert.rejects(
    readSafetensors("/nonexistent/x.safetensors"),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
});

// ---- atomic writes ----

test("atomic writes leave no temp file, on success or failure", async (t) => {
  const dir = await tempDir(t);
  await writeFileAtomic(path.join(dir, "a.txt"), "hello");
  writeFileAtomicSync(path.join(dir, "b.bin"), new Uint8Array([1, 2, 3]));
  await writeSafetensors(path.join(dir, "c.safetensors"), { x: { shape: [1], data: new Float32Array([1]) } });
  await writeFileAtomic(path.join(dir, "a.txt"), "replaced");
  assert.deepEqual((await readdir(dir)).sort(), ["a.txt", "b.bin", "c.safetensors"]);
  assert.equal(await readFile(path.join(dir, "a.txt"), "utf8"), "replaced");
  // Renaming a file over a directory fails: the temp file must be cleaned up.
  await mkdir(path.join(dir, "sub"));
  await assert.rejects(writeFileAtomic(path.join(dir, "sub"), "x"));
  assert.throws(() => writeFileAtomicSync(path.join(dir, "sub"), "x"));
  assert.deepEqual((await readdir(dir)).sort(), ["a.txt", "b.bin", "c.safetensors", "sub"]);
});

// ---- sharded checkpoints ----

function someTensors(): TensorsToWrite {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let i = 0; i < 5; i++) m.set(`layer.${i}.weight`, { shape: [4, 4], data: Float32Array.from({ length: 16 }, (_, j) => i * 100 + j) });
  return m;
}

test("sharded write/read round trip, and single-file when it fits", async (t) => {
  const dir = await tempDir(t);
  const files = await writeShardedCheckpoint(dir, someTensors(), 150); // 64 bytes each → 2 per shard
  assert.deepEqual(files, [
    "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
    INDEX_FILE,
  ]);
  const index = JSON.parse(await readFile(path.join(dir, INDEX_FILE), "utf8"));
  assert.equal(index.metadata.total_size, 5 * 64);
  assert.equal(index.weight_map["layer.4.weight"], "model-00003-of-00003.safetensors");
  const back = await readCheckpointTensors(dir);
  assert.deepEqual([...back.keys()].sort(), [...(someTensors() as Map<string, unknown>).keys()]);
  assert.deepEqual(Array.from(back.get("layer.3.weight")!.data.subarray(0, 3)), [300, 301, 302]);

  // Re-saving as one file removes the stale index and shards (and vice versa).
  assert.deepEqual(await writeShardedCheckpoint(dir, someTensors(), 1e9), ["model.safetensors"]);
  assert.deepEqual(await readdir(dir), ["model.safetensors"]);
  await writeShardedCheckpoint(dir, someTensors(), 64);
  assert.equal((await readdir(dir)).length, 6);
  assert.equal((await readCheckpointTensors(dir)).size, 5);
});

/** Write a 2-shard checkpoint, let `mutate` break it, and expect readCheckpointTensors to name the index. */
async function indexRejects(t: TestContext, mutate: (dir: string, index: any) => Promise<unknown>, re: RegExp) {
  const dir = await tempDir(t);
  await writeShardedCheckpoint(dir, { a: { shape: [1], data: new Float32Array([1]) }, b: { shape: [1], data: new Float32Array([2]) } }, 4);
  const indexPath = path.join(dir, INDEX_FILE);
  const result = await mutate(dir, JSON.parse(await readFile(indexPath, "utf8")));
  if (result !== undefined) await writeFile(indexPath, typeof result === "string" ? result : JSON.stringify(result));
  await assert.rejects(readCheckpointTensors(dir), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.ok(e.message.startsWith(`${indexPath}: `), e.message);
    assert.match(e.message, re);
    return true;
  });
}

const S1 = "model-00001-of-00002.safetensors";
const S2 = "model-00002-of-00002.safetensors";

test("index: not JSON", (t) => indexRejects(t, async () => "{oops", /invalid JSON/));
test("index: no weight_map", (t) =>
  indexRejects(
    t,
    async () => ({ metadata: {} }),
    /weight_map: expected an object of tensor name → shard file \(the field is required\), got nothing$/,
  ));
test("index: empty weight_map", (t) =>
  indexRejects(t, async () => ({ weight_map: {} }), /weight_map: expected at least one tensor, got \{\}$/));
test("index: shard name that is not a plain file name", (t) =>
  indexRejects(
    t,
    async (_d, ix) => ({ weight_map: { ...ix.weight_map, b: "../x.safetensors" } }),
    /weight_map\["b"\]: expected a shard file name in the same directory, got "\.\.\/x\.safetensors"$/,
  ));
test("index: shard file missing", (t) =>
  indexRejects(t, (d) => rm(path.join(d, S2)), /lists shard "model-00002-of-00002\.safetensors" but .* does not exist/));
test("index: shard holds a tensor the weight_map does not list", (t) =>
  indexRejects(
    t,
    async () => ({ weight_map: { a: S1, c: S2 } }),
    /shard "model-00002-of-00002\.safetensors" contains tensor "b", which weight_map does not list/,
  ));
test("index: weight_map puts a tensor in the wrong shard", (t) =>
  indexRejects(
    t,
    async () => ({ weight_map: { a: S1, b: S1 } }),
    /weight_map puts tensor "b" in "model-00001-of-00002\.safetensors" but that shard does not contain it/,
  ));
test("index: shard holds a tensor listed under another shard", (t) =>
  indexRejects(
    t,
    async () => ({ weight_map: { b: S1, a: S2 } }),
    /contains tensor "a" but weight_map puts it in "model-00002-of-00002\.safetensors"/,
  ));
test("index: tensor in two shards", (t) =>
  indexRejects(
    t,
    (d) =>
      writeSafetensors(path.join(d, S2), {
        a: { shape: [1], data: new Float32Array([9]) },
        b: { shape: [1], data: new Float32Array([2]) },
      }),
    /tensor "a" is in two shards, "model-00001-of-00002\.safetensors" and "model-00002-of-00002\.safetensors"/,
  ));

test("a directory without model.safetensors or an index is a clear UserError", async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, "pytorch_model.bin"), "x");
  await assert.rejects(
    readCheckpointTensors(dir),
    (e: unknown) =>
      e instanceof UserError &&
      e.message.startsWith(`${dir}: no model.safetensors or model.safetensors.index.json`) &&
      /\.bin.*not supported.*convert/.test(e.message),
  );
  await assert.rejects(readCheckpointTensors(path.join(dir, "nope")), /not a directory/);
});

// ---- a real checkpoint ----

test("reads the stories260K checkpoint", async () => {
  const m = await readCheckpointTensors(path.resolve(repoRoot, "../shared/models/stories260K"));
  const emb = m.get("model.embed_tokens.weight")!;
  assert.deepEqual(emb.shape, [512, 64]);
  assert.equal(emb.dtype, "F32");
  assert.equal(emb.data.length, 512 * 64);
  assert.ok(emb.data.every(Number.isFinite));
  const layers = new Set([...m.keys()].flatMap((k) => /^model\.layers\.(\d+)\./.exec(k)?.[1] ?? []));
  assert.equal(layers.size, 5);
  assert.ok([...m.values()].every((t) => t.dtype === "F32"));
  assert.deepEqual(m.get("model.layers.0.self_attn.k_proj.weight")!.shape, [32, 64]);
});

test("decodes an F32 tensor at an unaligned offset inside a Buffer", () => {
  const data = new Uint8Array(new Float32Array([1.5, -3]).buffer);
  const bytes = Buffer.from(raw('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} ', data));
  const f = parseSafetensors(bytes, F);
  assert.notEqual(f.tensors.get("x")!.begin % 4, 0);
  assert.deepEqual(Array.from(decodeTensor(bytes, f.tensors.get("x")!)), [1.5, -3]);
});
