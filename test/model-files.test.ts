/**
 * Bad weights, adapters and tokenizer files through the real binary — each once silently accepted (a null loss
 * reported as success, a dropped BOS, an integer tensor read as floats) or an internal error — and now exit 2
 * with one line naming the file and the field (exit 3 for a forward pass that overflows). The same inputs through
 * the DSL raise the same UserError. One test per bad input; `npm run build` first (the binary runs dist/).
 */
import { before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { model, type Model } from "../dsl/index.js";
import { UserError } from "../src/core/errors.js";
import { encodeDeadlineMs } from "../src/models/tokenizer.js";
import { STORIES } from "./helpers/paths.js";
import {
  changeTensors,
  expectCliError,
  storiesAdapter,
  storiesCopy,
  storiesWithTensors,
  testDir,
  writeFile,
  writeRawSafetensors,
} from "./helpers/cli.js";
import { readSafetensors } from "../src/checkpoint/safetensors.js";

type TestContext = { after: (fn: () => void) => void };

const evalOn = (model: string, data: string, ...more: string[]) => ["eval", "--model", model, "--data", data, ...more];

function goodData(t: TestContext): string {
  return writeFile(testDir(t, "data"), "data.jsonl", '{"text": "Once upon a time"}\n');
}

async function rejectsUserError(p: Promise<unknown>, ...expected: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const s of expected) assert.ok(e.message.includes(s), `should mention ${JSON.stringify(s)}: ${e.message}`);
    return true;
  });
}

// ---- weights ----

/** stories260K with one NaN in a weight. */
const withNaN = (t: TestContext) =>
  storiesWithTensors(testDir(t, "model"), "model", (ts) => {
    ts.get("model.layers.2.mlp.up_proj.weight")!.data[100] = NaN;
  });

test("eval: a NaN in a weight is rejected at load, naming the tensor and element (was: exit 0 with a null loss)", async (t) => {
  const dir = await withNaN(t);
  expectCliError(evalOn(dir, goodData(t)), [
    path.join(dir, "model.safetensors"),
    'tensor "model.layers.2.mlp.up_proj.weight"[1, 36]: expected a finite number, got NaN',
  ]);
});

test("DSL: model() rejects a NaN weight with the same message", async (t) => {
  const dir = await withNaN(t);
  await rejectsUserError(model(dir), 'tensor "model.layers.2.mlp.up_proj.weight"[1, 36]: expected a finite number, got NaN');
});

test("eval: an Inf in an adapter is rejected at load (was: exit 0 with a null loss)", async (t) => {
  const adapter = await storiesAdapter(testDir(t, "adapter"), "adapter");
  await changeTensors(path.join(adapter, "adapter_model.safetensors"), (ts) => {
    ts.get("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight")!.data[3] = -Infinity;
  });
  expectCliError(evalOn(STORIES, goodData(t), "--adapter", adapter), [
    path.join(adapter, "adapter_model.safetensors"),
    'tensor "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"[1, 1]: expected a finite number, got -Infinity',
  ]);
});

test("eval: a finite adapter still loads and changes the loss (the adapter fixture is real)", async (t) => {
  const adapter = await storiesAdapter(testDir(t, "adapter"), "adapter");
  const base = await model(STORIES);
  const tuned = await base.loadAdapter(adapter);
  const rows = [{ text: "Once upon a time there was a cat." }];
  assert.notEqual((await tuned.eval(rows)).loss, (await base.eval(rows)).loss);
});

/** stories260K whose model.norm.weight is stored as I32 (the rest as F32). */
async function withIntegerNorm(t: TestContext): Promise<string> {
  const dir = storiesCopy(testDir(t, "model"), "model");
  const file = path.join(dir, "model.safetensors");
  const tensors = await readSafetensors(file);
  writeRawSafetensors(
    file,
    [...tensors].map(([name, tensor]) =>
      name === "model.norm.weight"
        ? [name, "I32", tensor.shape, new Uint8Array(Int32Array.from(tensor.data, Math.round).buffer)]
        : [name, "F32", tensor.shape, new Uint8Array(tensor.data.buffer)],
    ),
  );
  return dir;
}

test("eval: an integer tensor as a weight is rejected (was: silently read as floats)", async (t) => {
  const dir = await withIntegerNorm(t);
  expectCliError(evalOn(dir, goodData(t)), [dir, 'tensor "model.norm.weight": expected a floating-point weight', "got dtype I32"]);
});

test("eval: a stored lm_head.weight of the wrong shape beside tied embeddings is rejected (was: ignored)", async (t) => {
  const dir = await storiesWithTensors(testDir(t, "model"), "model", (ts) =>
    ts.set("lm_head.weight", { shape: [512, 32], data: new Float32Array(512 * 32) }),
  );
  expectCliError(evalOn(dir, goodData(t)), [
    dir,
    'tensor "lm_head.weight" has shape [512, 32]',
    "tied to (tie_word_embeddings) is [512, 64]",
  ]);
});

test("eval: a stored lm_head.weight of the right shape beside tied embeddings is ignored, as transformers does", async (t) => {
  const dir = await storiesWithTensors(testDir(t, "model"), "model", (ts) =>
    ts.set("lm_head.weight", { shape: [512, 64], data: new Float32Array(512 * 64) }),
  );
  const [tied, original] = [await model(dir), await model(STORIES)];
  const rows = [{ text: "Once upon a time" }];
  assert.equal((await tied.eval(rows)).loss, (await original.eval(rows)).loss);
});

test("eval: a UTF-8 byte-order mark before the safetensors header's JSON is rejected (was: silently accepted)", (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model");
  const file = path.join(dir, "model.safetensors");
  const bytes = fs.readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(length + 3));
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from([0xef, 0xbb, 0xbf]), bytes.subarray(8)]));
  expectCliError(evalOn(dir, goodData(t)), [file, "header starts with a UTF-8 byte-order mark"]);
});

test("eval: a UTF-8 byte-order mark before the whole safetensors file is named as such", (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model");
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fs.readFileSync(file)]));
  expectCliError(evalOn(dir, goodData(t)), [file, "file starts with a UTF-8 byte-order mark"]);
});

// ---- a forward pass that overflows: divergence, exit 3 ----

/** Finite weights so large that the forward pass overflows float32. */
const exploding = (t: TestContext) =>
  storiesWithTensors(testDir(t, "model"), "model", (ts) => ts.get("model.layers.0.mlp.down_proj.weight")!.data.fill(3e38));

test("eval: a loss that is not finite although the weights are exits 3, naming the row (was: exit 0 with a null loss)", async (t) => {
  const dir = await exploding(t);
  const data = goodData(t);
  expectCliError(evalOn(dir, data), [`the loss is NaN on ${data}:1`, "overflowed float32"], 3);
});

test("DSL: eval with a loss that is not finite throws, naming the row", async (t) => {
  const m = await exploding(t);
  await rejectsUserError((await model(m)).eval([{ text: "Once upon a time" }]), "the loss is NaN on rows:1", "overflowed float32");
});

test("DSL: eval on rows of one token each throws instead of returning a null perplexity", async () => {
  const base = await model(STORIES);
  await rejectsUserError(base.eval([{ input_ids: [1] }, { input_ids: [7] }]), "no token to score in rows:1 … rows:2");
});

// ---- generation ----

let stories: Model;
before(async () => {
  stories = await model(STORIES);
});

for (const maxNewTokens of [0, -1, 2.5]) {
  test(`DSL: generate with maxNewTokens ${maxNewTokens} is a UserError (was: a raw tokenizer error with a stack)`, async () => {
    await rejectsUserError(
      stories.generate("Once", { maxNewTokens }),
      `generate: maxNewTokens: expected a positive integer, got ${maxNewTokens}`,
    );
  });
}

// ---- tokenizer.json / tokenizer_config.json ----

type Json = Record<string, unknown>;
const TOKENIZER_CASES: {
  name: string;
  file: string;
  edit: { tokenizer?: (j: Json) => void; tokenizerConfig?: (j: Json) => void };
  expected: string;
}[] = [
  {
    name: "add_bos_token of the wrong type",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => (c.add_bos_token = "yes") },
    expected: 'add_bos_token: expected true or false, got "yes"',
  },
  {
    name: "a bos_token that is not in the vocabulary",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => (c.bos_token = "<bos>") },
    expected: "bos_token: expected a token of the vocabulary in",
  },
  {
    name: "an eos_token that is not in the vocabulary (as an AddedToken object)",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => (c.eos_token = { content: "<|end|>", special: true }) },
    expected: "eos_token: expected a token of the vocabulary in",
  },
  {
    name: "a pad_token that is not in the vocabulary",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => (c.pad_token = "<pad>") },
    expected: 'got "<pad>"',
  },
  {
    name: "add_bos_token true without a bos_token",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => (c.bos_token = null) },
    expected: "bos_token: expected a token of the vocabulary (add_bos_token is true), got nothing",
  },
  {
    name: "an added_tokens_decoder id beyond the model's vocab_size",
    file: "tokenizer_config.json",
    edit: { tokenizerConfig: (c) => ((c.added_tokens_decoder as Json)["600"] = { content: "<x>", special: true }) },
    expected: `added_tokens_decoder["600"] (its id): expected a token id below the model's vocab_size (512), got 600`,
  },
  {
    name: "an added token whose id is beyond the model's vocab_size",
    file: "tokenizer.json",
    edit: { tokenizer: (j) => (j.added_tokens as Json[]).push({ id: 512, content: "<extra>", special: true }) },
    expected: "added_tokens[3].id: expected a token id below the model's vocab_size (512), got 512",
  },
  {
    name: "a vocabulary id beyond the model's vocab_size",
    file: "tokenizer.json",
    edit: { tokenizer: (j) => (((j.model as Json).vocab as Json)["▁Once"] = 900) },
    expected: `model.vocab["▁Once"]: expected a token id below the model's vocab_size (512), got 900`,
  },
  {
    name: "an empty vocabulary",
    file: "tokenizer.json",
    edit: { tokenizer: (j) => Object.assign(j.model as Json, { vocab: {}, merges: [] }) },
    expected: "model.vocab: expected a non-empty vocabulary, got {}",
  },
  {
    name: "an unknown model type",
    file: "tokenizer.json",
    edit: { tokenizer: (j) => ((j.model as Json).type = "WordLevel") },
    expected: 'model.type: expected one of "BPE", "Unigram", "WordPiece"',
  },
];

for (const c of TOKENIZER_CASES) {
  test(`eval: ${c.file}: ${c.name}`, (t) => {
    const dir = storiesCopy(testDir(t, "model"), "model", c.edit);
    expectCliError(evalOn(dir, goodData(t)), [path.join(dir, c.file), c.expected]);
  });
}

test("DSL: model() rejects add_bos_token of the wrong type with the same message", async (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model", { tokenizerConfig: (c) => (c.add_bos_token = "yes") });
  await rejectsUserError(model(dir), path.join(dir, "tokenizer_config.json"), 'add_bos_token: expected true or false, got "yes"');
});

/** stories260K whose pre-tokenizer splits on a regex that backtracks exponentially on "aaa…a!". */
const catastrophic = (t: TestContext) =>
  storiesCopy(testDir(t, "model"), "model", {
    tokenizer: (j) => (j.pre_tokenizer = { type: "Split", pattern: { Regex: "(a|aa)+$" }, behavior: "Isolated", invert: false }),
  });
const BACKTRACKING_TEXT = `${"a".repeat(60)}!`;

test("eval: a pre-tokenizer regex that backtracks catastrophically stops with an error naming it instead of hanging", async (t) => {
  const dir = catastrophic(t);
  const data = writeFile(testDir(t, "data"), "data.jsonl", JSON.stringify({ text: BACKTRACKING_TEXT }) + "\n");
  const start = Date.now();
  expectCliError(evalOn(dir, data), [
    path.join(dir, "tokenizer.json"),
    'pre_tokenizer.pattern.Regex: expected a pattern that runs in linear time, got "(a|aa)+$"',
    "backtracks catastrophically",
  ]);
  // (a|aa)+$ on 60 a's takes ~2^42 steps: only the deadline can have ended it.
  assert.ok(Date.now() - start < 60_000);
});

test("DSL: the same regex with ordinary text tokenizes normally, and the deadline stops the bad text", async (t) => {
  const m = await model(catastrophic(t));
  assert.ok((await m.eval([{ text: "Once upon a time" }])).tokens! > 0);
  const start = Date.now();
  await rejectsUserError(m.eval([{ text: BACKTRACKING_TEXT }]), "backtracks catastrophically");
  const took = Date.now() - start;
  assert.ok(took >= encodeDeadlineMs(BACKTRACKING_TEXT.length) - 50 && took < 4 * encodeDeadlineMs(BACKTRACKING_TEXT.length), `${took} ms`);
});

test("eval: a config.json claiming 2⁴⁰ layers is refused at once, naming the field (was: a hang listing the tensors)", (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model", { config: (c) => (c.num_hidden_layers = 2 ** 40) });
  expectCliError(evalOn(dir, goodData(t)), [
    path.join(dir, "config.json"),
    "num_hidden_layers = 1099511627776 implies",
    "weight tensors, but",
    "holds 47",
  ]);
});
