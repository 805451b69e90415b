/**
 * Bad inputs fed to the real binary (bin/loralab.js, which runs the compiled dist/: `npm run build` first), and the
 * broken model directories they need, built from copies of the real stories260K files.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../../src/checkpoint/safetensors.js";
import { CLI, REPO, STORIES, tempDir } from "./paths.js";

type TestContext = { after: (fn: () => void) => void };

/** A fresh temp directory, removed when the test ends. */
export function testDir(t: TestContext, prefix: string): string {
  const dir = tempDir(prefix);
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file in `dir` with exactly these bytes. */
export function writeFile(dir: string, name: string, content: string | Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: "utf8", env: { ...process.env, LORALAB_BACKEND: "" } });
}

/**
 * Runs `loralab ARGS` and expects it to fail with exit code `code` (2: bad input, 3: divergence) and exactly one
 * line on stderr, "loralab <command>: …", holding every `expected` string, without a stack trace. Returns the line.
 */
export function expectCliError(args: string[], expected: string[], code = 2): string {
  const run = runCli(args);
  const shown = `loralab ${args.join(" ")}\n--- exit ${run.status}, stderr ---\n${run.stderr}`;
  assert.equal(run.status, code, shown);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `stack frames on stderr:\n${shown}`);
  assert.doesNotMatch(run.stderr, /internal error/, shown);
  // Exactly one line on stderr: the backend report comes only after the inputs were validated.
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected exactly one line on stderr:\n${shown}`);
  const line = lines[0]!;
  assert.ok(line.startsWith(`loralab ${args[0]}: `), `should start with "loralab ${args[0]}: ":\n${shown}`);
  for (const e of expected) assert.ok(line.includes(e), `should mention ${JSON.stringify(e)}:\n${line}`);
  return line;
}

type Json = Record<string, unknown>;

export interface StoriesEdits {
  config?: (c: Json) => void;
  tokenizer?: (t: Json) => void;
  tokenizerConfig?: (c: Json) => void;
}

function editJson(file: string, edit: (j: Json) => void): void {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as Json;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

/** A writable copy of the real stories260K directory in `parent/name`, with `edits` applied to its JSON files. */
export function storiesCopy(parent: string, name: string, edits: StoriesEdits = {}): string {
  const dir = path.join(parent, name);
  fs.cpSync(STORIES, dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644); // the shared files are read-only
  if (edits.config) editJson(path.join(dir, "config.json"), edits.config);
  if (edits.tokenizer) editJson(path.join(dir, "tokenizer.json"), edits.tokenizer);
  if (edits.tokenizerConfig) editJson(path.join(dir, "tokenizer_config.json"), edits.tokenizerConfig);
  return dir;
}

/** Rewrites `file` (a safetensors file) with `change` applied to its tensors. */
export async function changeTensors(file: string, change: (t: Map<string, TensorToWrite>) => void): Promise<void> {
  const tensors = new Map<string, TensorToWrite>([...(await readSafetensors(file))].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
  change(tensors);
  await writeSafetensors(file, tensors);
}

/** A stories260K copy whose model.safetensors holds `change(tensors)` instead. */
export async function storiesWithTensors(parent: string, name: string, change: (t: Map<string, TensorToWrite>) => void): Promise<string> {
  const dir = storiesCopy(parent, name);
  await changeTensors(path.join(dir, "model.safetensors"), change);
  return dir;
}

/**
 * A PEFT LoRA adapter for stories260K (r 2 on every q_proj, lora_B non-zero so it changes the output), written by
 * hand in PEFT's layout: adapter_config.json + adapter_model.safetensors.
 */
export async function storiesAdapter(parent: string, name: string, value = (i: number) => ((i % 7) - 3) * 0.01): Promise<string> {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    r: 2,
    lora_alpha: 4,
    lora_dropout: 0,
    target_modules: ["q_proj"],
    bias: "none",
  };
  fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(config, null, 2));
  const tensors: Record<string, TensorToWrite> = {};
  const filled = (n: number) => Float32Array.from({ length: n }, (_, i) => value(i));
  for (let layer = 0; layer < 5; layer++) {
    const prefix = `base_model.model.model.layers.${layer}.self_attn.q_proj`;
    tensors[`${prefix}.lora_A.weight`] = { shape: [2, 64], data: filled(128) };
    tensors[`${prefix}.lora_B.weight`] = { shape: [64, 2], data: filled(128) };
  }
  await writeSafetensors(path.join(dir, "adapter_model.safetensors"), tensors);
  return dir;
}

/** Writes a safetensors file from raw little-endian tensor bytes, in any dtype (the library writes floats only). */
export function writeRawSafetensors(file: string, tensors: [name: string, dtype: string, shape: number[], bytes: Uint8Array][]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, dtype, shape, bytes] of tensors) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([length, json, ...tensors.map(([, , , bytes]) => bytes)]));
}
