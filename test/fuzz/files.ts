/**
 * The pristine inputs the fuzzer mutates — a real model directory (tiny-moby: config.json, F16 safetensors, BPE
 * tokenizer), a real PEFT adapter trained-shape for it, and a data file — and a small safetensors reader/writer of
 * the fuzzer's own (independent of src/checkpoint, which is under test).
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];

export interface SafetensorsFile {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  data: Buffer;
}

export function parseSafetensors(bytes: Buffer): SafetensorsFile {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}

export function serializeSafetensors(file: SafetensorsFile): Buffer {
  const json = Buffer.from(JSON.stringify(file.header), "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, file.data]);
}

/** Names of the tensors of a file (not __metadata__). */
export function tensorNames(file: SafetensorsFile): string[] {
  return Object.keys(file.header).filter((k) => k !== "__metadata__");
}

export function tensorEntry(file: SafetensorsFile, name: string): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  return file.header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
}

/** Copies a directory's files (flat) into `to`. */
export function copyFlat(from: string, to: string, names?: string[]): void {
  fs.mkdirSync(to, { recursive: true });
  for (const name of names ?? fs.readdirSync(from)) {
    const src = path.join(from, name);
    if (fs.existsSync(src) && fs.statSync(src).isFile()) fs.copyFileSync(src, path.join(to, name));
  }
}

export const DATA_ROWS = [
  { text: "Call me Ishmael. Some years ago I went to sea." },
  { text: "The whale rose from the deep, white and vast." },
  { prompt: "Captain Ahab", completion: " stood upon the deck." },
  { input_ids: [0, 17, 230, 41, 9, 77] },
];

export function jsonl(rows: readonly unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
}
