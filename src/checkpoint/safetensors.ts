/**
 * Reading and writing the safetensors format:
 *
 *   [u64 little-endian N][N bytes of UTF-8 JSON header, may be padded with spaces][data section]
 *
 * The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the data section) plus an optional "__metadata__" object of string → string. Tensors must tile
 * the data section exactly: no gaps, no overlaps, nothing left over.
 */
import { readFile } from "node:fs/promises";
import { inputError } from "../core/errors.js";
import { writeFileAtomic } from "../core/files.js";
import { f32BitsToBf16, f32BitsToF16, getHalfTable } from "./half-float.js";

/** Bytes per element of each safetensors dtype. (F8 types are not supported.) */
export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;
export type DType = keyof typeof DTYPE_SIZES;

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(["F64", "F32", "F16", "BF16"]);

/** Floating-point dtypes: what weights, adapters and optimizer states are stored as. */
export function isFloatDType(dtype: DType): boolean {
  return FLOAT_DTYPES.has(dtype);
}

/** One header entry; `begin`/`end` are absolute byte offsets into the parsed file's bytes. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}
export interface SafetensorsFile {
  metadata: Record<string, string> | undefined;
  tensors: Map<string, TensorInfo>;
}
/** A tensor decoded to float32; `dtype` is the dtype it had in the file. */
export interface DecodedTensor {
  shape: number[];
  data: Float32Array;
  dtype: DType;
}

export type WritableDType = "F32" | "F16" | "BF16";
export interface TensorToWrite {
  dtype?: WritableDType;
  shape: number[];
  data: Float32Array;
}
/** What the header says of a tensor: its dtype and shape (a writer that streams the data supplies it later). */
export type TensorLayout = Omit<TensorToWrite, "data">;
export type TensorsToWrite = Record<string, TensorToWrite> | Map<string, TensorToWrite>;

/** Same cap as the reference implementation: a larger header means a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

// Typed arrays use host byte order; safetensors is little-endian. Take the fast paths only when they agree.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const showShape = (shape: readonly number[]) => `[${shape.join(",")}]`;
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

const startsWithBom = (bytes: Uint8Array, at: number) => bytes[at] === 0xef && bytes[at + 1] === 0xbb && bytes[at + 2] === 0xbf;

/**
 * Parses and validates the header. `bytes` holds the file, or at least its first 8 + N bytes (length prefix and
 * header) when `fileLength` gives the length of the whole file (a reader that streams tensors from disk).
 */
export function parseSafetensors(bytes: Uint8Array, file: string, fileLength = bytes.length): SafetensorsFile {
  if (fileLength < 8) {
    throw inputError(file, `file is ${fileLength} bytes, shorter than the 8-byte header-length prefix of a safetensors file`);
  }
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  // A BOM in front makes the length absurd (bytes EF BB BF are its low bytes): say what is wrong instead.
  if (startsWithBom(bytes, 0) && headerLen > BigInt(Math.min(MAX_HEADER_BYTES, fileLength - 8))) {
    throw inputError(file, "file starts with a UTF-8 byte-order mark; expected the 8-byte header length first (was it saved as text?)");
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw inputError(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit; expected a safetensors file`);
  }
  if (headerLen > BigInt(fileLength - 8)) {
    throw inputError(
      file,
      `header length ${headerLen} is larger than the ${fileLength - 8} bytes after the prefix; file truncated or not safetensors`,
    );
  }
  const dataStart = 8 + Number(headerLen);
  const dataLen = fileLength - dataStart;

  // TextDecoder would drop a BOM silently; the format (and the reference reader) has none.
  if (startsWithBom(bytes, 8))
    throw inputError(file, "header starts with a UTF-8 byte-order mark; expected a JSON object right after the length");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch {
    throw inputError(file, "header is not valid UTF-8; expected a UTF-8 JSON object");
  }
  let header: unknown;
  try {
    header = JSON.parse(text); // trailing space padding is ordinary JSON whitespace
  } catch (e) {
    throw inputError(file, `header is not valid JSON (${(e as Error).message}); expected a JSON object`);
  }
  if (!isObject(header)) {
    throw inputError(file, `header is ${Array.isArray(header) ? "an array" : JSON.stringify(header)}; expected a JSON object`);
  }

  let metadata: Record<string, string> | undefined;
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(entry)) throw inputError(file, `"__metadata__" is ${JSON.stringify(entry)}; expected an object of string → string`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") throw inputError(file, `"__metadata__" key "${k}" is ${JSON.stringify(v)}; expected a string value`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isObject(entry)) throw inputError(file, `${where}: entry is ${JSON.stringify(entry)}; expected {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZES, dtype)) {
      throw inputError(file, `${where}: unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPE_SIZES).join(", ")}`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw inputError(file, `${where}: shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw inputError(
        file,
        `${where}: data_offsets ${JSON.stringify(offsets)}; expected [begin, end], non-negative integers with begin <= end`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLen) {
      throw inputError(file, `${where}: data_offsets [${begin},${end}] extend past the end of the ${dataLen}-byte data section`);
    }
    const d = dtype as DType;
    const expected = numel(shape) * DTYPE_SIZES[d];
    if (expected !== end - begin) {
      throw inputError(file, `${where}: shape ${showShape(shape)} × ${d} = ${expected} bytes but data_offsets span ${end - begin} bytes`);
    }
    tensors.set(name, { dtype: d, shape, begin: dataStart + begin, end: dataStart + end });
  }

  // Tiling check: sorted by position, each tensor must start exactly where the previous one ended.
  const sorted = [...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let pos = dataStart;
  let prev = "";
  for (const [name, t] of sorted) {
    if (t.begin > pos) {
      throw inputError(
        file,
        `data bytes [${pos - dataStart},${t.begin - dataStart}) before tensor "${name}" belong to no tensor; expected tensors to be contiguous`,
      );
    }
    if (t.begin < pos) {
      throw inputError(
        file,
        `tensor "${name}" (data_offsets [${t.begin - dataStart},${t.end - dataStart}]) overlaps tensor "${prev}"; expected non-overlapping tensors`,
      );
    }
    pos = t.end;
    prev = name;
  }
  if (pos !== fileLength) {
    throw inputError(
      file,
      `tensors cover ${pos - dataStart} of the ${dataLen}-byte data section; expected the last tensor to end at the end of the file`,
    );
  }
  return { metadata, tensors };
}

/**
 * Decode one tensor to a fresh Float32Array (never a view of `bytes`, so callers may mutate it and
 * the file buffer can be freed). Everything becomes float32 because that is what the engine computes in:
 * F32/F16/BF16 exactly; F64 rounded to nearest (overflow → ±Inf); integer types exact up to |x| = 2^24,
 * rounded beyond; BOOL as 0/1.
 */
export function decodeTensor(bytes: Uint8Array, info: TensorInfo): Float32Array {
  const src = bytes.subarray(info.begin, info.end);
  const n = src.length / DTYPE_SIZES[info.dtype];
  const out = new Float32Array(n);
  if (info.dtype === "F32" && LITTLE_ENDIAN_HOST) {
    // Copy byte-wise: the source may be unaligned, and `bytes` may be a Buffer whose slice() is a view.
    new Uint8Array(out.buffer).set(src);
    return out;
  }
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (info.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      break;
    case "F16": {
      const table = getHalfTable();
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, true)]!;
      break;
    }
    case "BF16": {
      // bf16 is the top half of an f32: shift the bits back into place.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      break;
    }
    case "I64":
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(8 * i, true));
      break;
    case "U64":
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigUint64(8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true);
      break;
    case "U32":
      for (let i = 0; i < n; i++) out[i] = dv.getUint32(4 * i, true);
      break;
    case "I16":
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true);
      break;
    case "U16":
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
      break;
    case "I8":
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case "U8":
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      break;
    case "BOOL":
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i) ? 1 : 0;
      break;
  }
  return out;
}

/** Read and validate a .safetensors file and decode every tensor to float32. */
export async function readSafetensors(path: string): Promise<Map<string, DecodedTensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw inputError(path, "file does not exist; expected a .safetensors file");
    if (code === "EISDIR") throw inputError(path, "is a directory; expected a .safetensors file");
    throw e;
  }
  const { tensors } = parseSafetensors(bytes, path);
  const out = new Map<string, DecodedTensor>();
  for (const [name, info] of tensors) out.set(name, decodeChecked(path, name, bytes, info));
  return out;
}

/** Decodes one tensor of `file` (see decodeTensor), rejecting a float tensor that holds NaN or ±Inf. */
export function decodeChecked(file: string, name: string, bytes: Uint8Array, info: TensorInfo): DecodedTensor {
  const data = decodeTensor(bytes, info);
  if (isFloatDType(info.dtype)) rejectNonFinite(file, name, info, data, bytes);
  return { shape: info.shape, data, dtype: info.dtype };
}

/**
 * Weights, adapters, optimizer states and checkpoints never legitimately hold NaN or ±Inf (nor F64 values beyond
 * float32's range, which decode to ±Inf): such a file is corrupt or comes from a diverged run, and every number
 * computed from it would be NaN. Rejected here, naming the tensor and the first bad element.
 */
function rejectNonFinite(file: string, name: string, info: TensorInfo, data: Float32Array, bytes: Uint8Array): void {
  let first = -1;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) {
      // true exactly for NaN and ±Inf
      if (first < 0) first = i;
      count++;
    }
  }
  if (first < 0) return;
  const index: number[] = [];
  for (let rest = first, d = info.shape.length - 1; d >= 0; d--) {
    index.unshift(rest % info.shape[d]!);
    rest = Math.floor(rest / info.shape[d]!);
  }
  const stored =
    info.dtype === "F64" ? new DataView(bytes.buffer, bytes.byteOffset + info.begin + 8 * first, 8).getFloat64(0, true) : data[first]!;
  const got = Number.isFinite(stored) ? `${stored} (beyond float32's range)` : String(stored);
  const more = count > 1 ? ` (and ${count - 1} more non-finite value${count > 2 ? "s" : ""})` : "";
  throw inputError(file, `tensor "${name}"${index.length ? `[${index.join(", ")}]` : ""}: expected a finite number, got ${got}${more}`);
}

function encode(data: Float32Array, dtype: WritableDType): Uint8Array {
  if (dtype === "F32" && LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  const out = new Uint8Array(data.length * DTYPE_SIZES[dtype]);
  const dv = new DataView(out.buffer);
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < data.length; i++) {
    if (dtype === "F32") dv.setFloat32(4 * i, data[i]!, true);
    else dv.setUint16(2 * i, dtype === "F16" ? f32BitsToF16(bits[i]!) : f32BitsToBf16(bits[i]!), true);
  }
  return out;
}

/**
 * Bytes `t` will occupy in a safetensors file. Throws (a plain Error: a caller bug, not bad input)
 * when the shape does not match the data or the dtype cannot be written.
 */
export function tensorByteLength(name: string, t: TensorToWrite | TensorLayout): number {
  const dtype = t.dtype ?? "F32";
  if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
    throw new Error(`tensor "${name}": cannot write dtype ${JSON.stringify(dtype)}; expected F32, F16 or BF16`);
  }
  if (!Array.isArray(t.shape) || !t.shape.every(isCount)) {
    throw new Error(`tensor "${name}": shape ${JSON.stringify(t.shape)}; expected an array of non-negative integers`);
  }
  if ("data" in t && numel(t.shape) !== t.data.length) {
    throw new Error(`tensor "${name}": shape ${showShape(t.shape)} has ${numel(t.shape)} elements but data has ${t.data.length}`);
  }
  return numel(t.shape) * DTYPE_SIZES[dtype];
}

/** Entries sorted by name (UTF-16 code-unit order), so the same tensors always give the same bytes. */
export function sortedEntries<T>(items: Record<string, T> | Map<string, T>): [string, T][] {
  const entries = items instanceof Map ? [...items] : Object.entries(items);
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The length prefix and the JSON header (padded with spaces to a multiple of 8) of a file holding `entries` in this
 * order, back to back. Throws for a bad name, shape or dtype (see tensorByteLength).
 */
export function safetensorsHeader(entries: [string, TensorToWrite | TensorLayout][], metadata?: Record<string, string>): Uint8Array {
  const header: [string, unknown][] = [];
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`metadata "${k}" is ${JSON.stringify(v)}; expected a string`);
    }
    header.push(["__metadata__", Object.fromEntries(sortedEntries(metadata))]);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "__metadata__") throw new Error(`"__metadata__" is reserved and cannot be a tensor name`);
    const size = tensorByteLength(name, t);
    header.push([name, { dtype: t.dtype ?? "F32", shape: t.shape, data_offsets: [offset, offset + size] }]);
    offset += size;
  }
  // Object.fromEntries defines own properties, so even a tensor named "__proto__" survives.
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const headerLen = Math.ceil(json.length / 8) * 8; // keeps the data section 8-byte aligned
  const out = new Uint8Array(8 + headerLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return out;
}

/** A tensor's bytes as the file stores them (little-endian F32, F16 or BF16). */
export function encodeTensor(t: TensorToWrite): Uint8Array {
  return encode(t.data, t.dtype ?? "F32");
}

/** Serialize to safetensors bytes: header padded with spaces to a multiple of 8, tensors in name order. */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const entries = sortedEntries(tensors);
  const head = safetensorsHeader(entries, metadata);
  const chunks = entries.map(([, t]) => encodeTensor(t));
  const out = new Uint8Array(head.length + chunks.reduce((sum, c) => sum + c.length, 0));
  out.set(head);
  let pos = head.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/** Serialize and write atomically (readers never see a half-written file). */
export async function writeSafetensors(path: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
