/** Running test/reference/nf4_reference.py (the NF4 quantizer written from the QLoRA paper) from the tests. */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Random } from "../../src/core/random.js";
import { REPO } from "./paths.js";
import { PYTHON } from "./reference.js";

export type Nf4Case =
  | { name: string; kind: "tables" | "halves" }
  | { name: string; kind: "quantize"; values: string; blocksize?: number; double_quant?: boolean }
  | { name: string; kind: "checkpoint"; model: string; blocksize?: number };

export type Nf4Result = Record<string, unknown> & { error?: string };

export function runNf4Reference(cases: Nf4Case[], workDir: string): Record<string, Nf4Result> {
  const requestFile = path.join(workDir, "nf4-request.json");
  fs.writeFileSync(requestFile, JSON.stringify({ cases }));
  const script = path.join(REPO, "test/reference/nf4_reference.py");
  const run = spawnSync(PYTHON, [script, requestFile], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (run.status !== 0) throw new Error(`nf4_reference.py failed (${run.status}): ${run.stderr}\n${run.stdout.slice(0, 2000)}`);
  return (JSON.parse(run.stdout) as { results: Record<string, Nf4Result> }).results;
}

/** Writes values as raw little-endian float32 (what the reference's "quantize" case reads). */
export function writeFloat32(file: string, values: Float32Array): string {
  fs.writeFileSync(file, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return file;
}

export function base64Bytes(text: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(text as string, "base64"));
}

export function base64Float32(text: unknown): Float32Array {
  const bytes = base64Bytes(text);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** `n` seeded draws from N(0, std²) (Box–Muller), as float32. */
export function gaussian(n: number, seed: number, std = 1): Float32Array {
  const random = new Random(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next()) * std;
  return out;
}
