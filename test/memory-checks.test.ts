/**
 * Sizes are checked before anything is allocated: a model too large for the backend, an absurd config.json, a
 * --batch of 100000, an eval window of 30,000 tokens under a huge context, an adapter rank of 100000 — each fails
 * at once with what it needs, what the backend allows and what to do, through the real CLI and the DSL, and the
 * same process keeps working afterwards. The estimates behind the checks stay within a stated factor of what
 * tf.profile measures.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { safetensorsHeader } from "../src/checkpoint/safetensors.js";
import { parseModelConfig } from "../src/models/config.js";
import { parameterSpecs } from "../src/models/parameters.js";
import { loadModel } from "../src/models/load.js";
import { measurePassPeak, type MeasuredPass } from "../src/train/pass-peak.js";
import { model, UserError, type Model } from "../dsl/index.js";
import { expectCliError, writeFile } from "./helpers/cli.js";
import { REPO, STORIES, tempDir } from "./helpers/paths.js";

const work = tempDir("memory-checks");
const SHIPPED = path.join(REPO, "models/tiny-moby");
let base: Model;

before(async () => {
  await initBackend("wasm");
  base = await model("tiny-moby", { backend: "wasm" });
});
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** A copy of tiny-moby with config.json edited. */
function shippedWith(name: string, edit: (config: Record<string, unknown>) => void): string {
  const dir = path.join(work, name);
  if (fs.existsSync(dir)) return dir;
  fs.cpSync(SHIPPED, dir, { recursive: true });
  const file = path.join(dir, "config.json");
  const config = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config));
  return dir;
}

/**
 * A checkpoint of 1.9 billion float32 parameters (8 Llama-7B-sized layers, 7.0 GiB) whose tensor data is a sparse
 * file: a valid header, no bytes on disk. Loading it must stop before reading a tensor.
 */
function hugeModel(): string {
  const dir = path.join(work, "huge");
  if (fs.existsSync(dir)) return dir;
  fs.mkdirSync(dir);
  const raw = {
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 8,
    num_attention_heads: 32,
    max_position_embeddings: 2048,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(raw));
  const specs = parameterSpecs(parseModelConfig(raw, "config.json"));
  const header = safetensorsHeader(specs.map((s) => [s.name, { shape: [...s.shape] }]));
  const data = specs.reduce((sum, s) => sum + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, header);
  fs.truncateSync(file, header.length + data);
  return dir;
}

const rows = (dir: string, lines: unknown[]) => writeFile(dir, "rows.jsonl", lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
const someRows = () =>
  rows(work, [{ text: "Call me Ishmael." }, { text: "The whale, the whale!" }, { text: "Queequeg was a native of Rokovoko." }]);

/** A model with a ten-million-token context, and one row of 30,000 token ids. */
const hugeContext = () => shippedWith("huge-context", (c) => (c.max_position_embeddings = 10_000_000));
const longRow = () => ({ input_ids: Array.from({ length: 30_000 }, (_, i) => (i * 7) % 1024) });

test("CLI: a config.json with an absurd vocab_size fails on the first mismatched tensor, before allocating", () => {
  const dir = shippedWith("absurd-vocab", (c) => (c.vocab_size = 1_000_000_000));
  expectCliError(
    ["eval", "--model", dir, "--data", someRows(), "--backend", "wasm"],
    [`tensor "model.embed_tokens.weight" has shape [1024, 128] but config.json implies [1000000000, 128]`],
  );
});

test("CLI: a config.json with an absurd hidden_size fails the same way", () => {
  const dir = shippedWith("absurd-hidden", (c) => {
    c.hidden_size = 3_200_000;
    c.head_dim = 800_000;
  });
  expectCliError(["eval", "--model", dir, "--data", someRows(), "--backend", "wasm"], ["has shape", "but config.json implies", "3200000"]);
});

test("CLI: a model whose float32 weights exceed wasm's heap is refused before a tensor is read, naming --quantize nf4", () => {
  expectCliError(
    ["eval", "--model", hugeModel(), "--data", someRows(), "--backend", "wasm"],
    [
      "config.json: this model needs ≈ 7.",
      "GiB of tensor memory (float32 weights 7.",
      "the wasm backend allows 4.0 GiB",
      "--quantize nf4",
      "--backend tensorflow",
    ],
  );
});

test("CLI: train --batch 100000 is refused before the first step, naming the options that shrink it", () => {
  expectCliError(
    ["train", "--model", "tiny-moby", "--data", someRows(), "--batch", "100000", "--steps", "1", "--backend", "wasm"],
    [
      "a training step of 100000 × ",
      "the wasm backend allows 4.0 GiB",
      "--batch (batchSize)",
      "--seq (maxLength)",
      "--gradient-checkpointing (gradientCheckpointing): true",
      "QLoRA",
    ],
  );
});

test("CLI: eval --stride with a ten-million-token context and a 30,000-token row is refused before the forward pass", () => {
  const data = rows(path.join(work), [longRow()]);
  expectCliError(
    ["eval", "--model", hugeContext(), "--data", data, "--stride", "100000", "--batch", "1", "--backend", "wasm"],
    ["perplexity: a batch of 1 window of 30000 tokens needs ≈", "the wasm backend allows 4.0 GiB", "--max-length (maxLength)"],
  );
});

test("CLI: train --lora r=100000 is refused before the adapter is allocated", () => {
  expectCliError(
    ["train", "--model", "tiny-moby", "--data", someRows(), "--lora", "r=100000", "--steps", "1", "--backend", "wasm"],
    [
      'lora config: adapter "default" (r = 100000 on 8 layers) needs ≈',
      "adapter weights",
      "their gradients and AdamW state",
      "a smaller r",
    ],
  );
});

/** The same process still trains and evaluates normally after a refusal. */
async function stillWorks(): Promise<void> {
  const data = [{ text: "Call me Ishmael." }, { text: "The whale, the whale!" }];
  const run = await base.lora(2).train(data, { maxSteps: 2, batchSize: 2, runsDir: false });
  assert.equal(run.status, "completed");
  assert.ok(Number.isFinite((await run.model.eval(data)).perplexity));
  run.model.discard();
}

test("DSL: model() of a model too large for wasm rejects with the same message, and the session keeps working", async () => {
  await assert.rejects(model(hugeModel()), (e: unknown) => e instanceof UserError && /allows 4\.0 GiB/.test(e.message));
  await stillWorks();
});

test("DSL: lora({ r: 100000 }) is refused before allocating; no adapter is left on the base", async () => {
  const adapters = base.peftModel().adapters.size;
  const bytes = tf.memory().numBytes;
  await assert.rejects(
    base.lora({ r: 100000 }).train([{ text: "Call me Ishmael." }], { runsDir: false }),
    (e: unknown) => e instanceof UserError && /r = 100000/.test(e.message),
  );
  assert.equal(base.peftModel().adapters.size, adapters);
  assert.equal(tf.memory().numBytes, bytes);
  await stillWorks();
});

test("DSL: batchSize 100000 is refused before the first step; the adapter made for it is taken back out", async () => {
  const adapters = base.peftModel().adapters.size;
  const bytes = tf.memory().numBytes;
  await assert.rejects(
    base.lora(2).train([{ text: "Call me Ishmael." }], { batchSize: 100000, runsDir: false }),
    (e: unknown) => e instanceof UserError && /a training step of 100000 × \d+ tokens needs/.test(e.message),
  );
  assert.equal(base.peftModel().adapters.size, adapters);
  assert.equal(tf.memory().numBytes, bytes);
  await stillWorks();
});

test("DSL: eval of a 30,000-token row under a huge context is refused, then shorter rows evaluate", async () => {
  const huge = await model(hugeContext());
  await assert.rejects(huge.eval([longRow()]), (e: unknown) => e instanceof UserError && /window of 30000 tokens/.test(e.message));
  const ok = await huge.eval([{ input_ids: longRow().input_ids.slice(0, 200) }]);
  assert.ok(Number.isFinite(ok.perplexity));
  huge.loaded.model.dispose();
});

test("DSL and CLI: generating from a 30,000-token prompt under a huge context is refused before the forward pass", async () => {
  const huge = await model(hugeContext());
  await assert.rejects(
    huge.generate(longRow().input_ids, { maxNewTokens: 2 }),
    (e: unknown) => e instanceof UserError && /^generate: a prompt of 30000 tokens needs ≈ .*; try a shorter prompt$/.test(e.message),
  );
  const ok = await huge.generate(longRow().input_ids.slice(0, 20), { maxNewTokens: 2 });
  assert.equal(ok.ids.length, 2, "the same model generates from a short prompt afterwards");
  huge.loaded.model.dispose();
  expectCliError(
    ["generate", "--model", hugeContext(), "--ids", longRow().input_ids.join(","), "--max-new-tokens", "2", "--backend", "wasm"],
    ["generate: a prompt of 30000 tokens needs ≈", "the wasm backend allows 4.0 GiB", "a shorter prompt"],
  );
});

// The estimates against tf.profile's measured peak (tensors added on top of the weights), on real models.
const MODES: [MeasuredPass, string][] = [
  ["inference", "forward and loss, no gradients"],
  ["adapter", "LoRA step"],
  ["adapter-checkpointed", "LoRA step with activation checkpointing"],
  ["full", "full fine-tuning step"],
];

for (const [name, dir] of [
  ["tiny-moby", "tiny-moby"],
  ["stories260K", STORIES],
] as const) {
  for (const [mode, what] of MODES) {
    test(`${name}: the memory estimate of a ${what} is within 0.8–1.6× of the measured peak`, async (t) => {
      const m = await loadModel(dir);
      t.after(() => m.model.dispose());
      for (const [batch, seq] of [
        [4, 64],
        [1, 256],
      ]) {
        const { estimate, measured: peak } = await measurePassPeak(m.model, mode, batch, seq);
        t.diagnostic(`${batch} × ${seq}: estimate ${(estimate / 2 ** 20).toFixed(1)} MiB, measured ${(peak / 2 ** 20).toFixed(1)} MiB`);
        assert.ok(estimate >= 0.8 * peak && estimate <= 1.6 * peak, `${batch} × ${seq}: estimate ${estimate}, measured ${peak}`);
      }
    });
  }
}
