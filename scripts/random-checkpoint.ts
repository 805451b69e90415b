/**
 * Writes a Hugging Face checkpoint (config.json + safetensors shards + index) with seeded random weights for a
 * model configuration, tensor by tensor: each tensor is drawn, encoded and appended to its shard file before the
 * next one exists, so a model far larger than memory as one buffer (TinyLlama-1.1B: 4.4 GB in float32) is
 * written with one tensor in memory at a time. Used to try loralab at real model sizes without downloading.
 *
 *   node --import tsx scripts/random-checkpoint.ts --config smollm-135m --out /tmp/smollm-135m
 *   node --import tsx scripts/random-checkpoint.ts --config tinyllama-1.1b --out /tmp/tinyllama --dtype BF16
 *   node --import tsx scripts/random-checkpoint.ts --config path/to/config.json --out DIR [--seed 0] [--shard-bytes 2e9]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { encodeTensor, safetensorsHeader, type TensorToWrite, type WritableDType } from "../src/checkpoint/safetensors.js";
import { INDEX_FILE } from "../src/checkpoint/shard-index.js";
import { writeFileAtomicSync } from "../src/core/files.js";
import { parseModelConfig } from "../src/models/config.js";
import { initialTensors } from "../src/models/init.js";
import { elementCount, parameterSpecs } from "../src/models/parameters.js";

/** Configurations of published models (their config.json fields that matter here). */
export const CONFIGS: Record<string, Record<string, unknown>> = {
  // HuggingFaceTB/SmolLM-135M
  "smollm-135m": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 0,
  },
  // TinyLlama/TinyLlama-1.1B-Chat-v1.0
  "tinyllama-1.1b": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 2048,
    intermediate_size: 5632,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
};

const DTYPE_BYTES: Record<WritableDType, number> = { F32: 4, F16: 2, BF16: 2 };

const pad5 = (n: number) => String(n).padStart(5, "0");

/** Writes the checkpoint; returns the files written (shards, then the index). */
export function writeRandomCheckpoint(
  out: string,
  rawConfig: Record<string, unknown>,
  { seed = 0, dtype = "F32" as WritableDType, shardBytes = 2e9 } = {},
): string[] {
  const config = parseModelConfig(rawConfig, "config");
  const specs = parameterSpecs(config);
  // Shards in parameter order, greedily up to shardBytes each (a larger tensor gets a shard of its own).
  const shards: { name: string; shape: number[] }[][] = [];
  let bytes = Infinity;
  for (const { name, shape } of specs) {
    const size = elementCount(shape) * DTYPE_BYTES[dtype];
    if (bytes + size > shardBytes) {
      shards.push([]);
      bytes = 0;
    }
    shards.at(-1)!.push({ name, shape: [...shape] });
    bytes += size;
  }
  fs.mkdirSync(out, { recursive: true });
  const tensors = initialTensors(config, { seed });
  const weightMap: Record<string, string> = {};
  const written: string[] = [];
  let total = 0;
  shards.forEach((entries, i) => {
    const file = `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
    const header = safetensorsHeader(entries.map(({ name, shape }) => [name, { dtype, shape }]));
    const tmp = path.join(out, `.${file}.tmp-${process.pid}`);
    const fd = fs.openSync(tmp, "w");
    try {
      fs.writeSync(fd, header);
      for (const entry of entries) {
        const [name, tensor] = tensors.next().value as [string, TensorToWrite];
        if (name !== entry.name) throw new Error(`tensor order: expected ${entry.name}, got ${name}`);
        const encoded = encodeTensor({ ...tensor, dtype });
        fs.writeSync(fd, encoded);
        total += encoded.length;
        weightMap[name] = file;
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(out, file));
    written.push(file);
  });
  writeFileAtomicSync(
    path.join(out, "config.json"),
    `${JSON.stringify({ ...rawConfig, torch_dtype: dtype === "F32" ? "float32" : dtype === "F16" ? "float16" : "bfloat16" }, null, 2)}\n`,
  );
  // The index goes last: until it lands, the directory is not a checkpoint.
  writeFileAtomicSync(
    path.join(out, INDEX_FILE),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
  return [...written, INDEX_FILE];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      out: { type: "string" },
      seed: { type: "string" },
      dtype: { type: "string" },
      "shard-bytes": { type: "string" },
    },
  });
  if (!values.config || !values.out)
    throw new Error("usage: random-checkpoint.ts --config NAME|config.json --out DIR [--seed N] [--dtype F32|F16|BF16]");
  const raw = CONFIGS[values.config] ?? (JSON.parse(fs.readFileSync(values.config, "utf8")) as Record<string, unknown>);
  const dtype = (values.dtype ?? "F32") as WritableDType;
  if (!(dtype in DTYPE_BYTES)) throw new Error(`--dtype: expected F32, F16 or BF16, got ${dtype}`);
  const started = performance.now();
  const files = writeRandomCheckpoint(values.out, raw, {
    seed: Number(values.seed ?? 0),
    dtype,
    shardBytes: Number(values["shard-bytes"] ?? 2e9),
  });
  console.log(`${values.out}: ${files.join(", ")} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
