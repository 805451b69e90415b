/**
 * Every user error of the data, config.json and flags through the real binary: exit code 2, one stderr line
 * "loralab <command>: …" that names the file / field / flag at fault, and no stack trace. One test per bad
 * input; broken model directories are copies of the real stories260K files or a tiny seeded checkpoint.
 * Run `npm run build` first: bin/loralab.js imports the compiled dist/.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { STORIES } from "./helpers/paths.js";
import { expectCliError, runCli, storiesCopy, storiesWithTensors, testDir, writeFile } from "./helpers/cli.js";
import { writeTinyCheckpoint } from "./helpers/tiny-models.js";

type TestContext = { after: (fn: () => void) => void };

const evalOn = (model: string, data: string) => ["eval", "--model", model, "--data", data];
const generateWith = (...args: string[]) => ["generate", "--model", STORIES, ...args];

/** A one-row text data file in a fresh temp dir. */
function goodData(t: TestContext): string {
  return writeFile(testDir(t, "data"), "data.jsonl", '{"text": "Once upon a time"}\n');
}

// ---- data (eval --data) ----

const DATA_CASES: { name: string; content: string | Buffer; expected: (file: string) => string[] }[] = [
  {
    name: "invalid JSON names the line",
    content: '{"text": "a"}\n{"text": "b"}\n{"text": oops}\n',
    expected: (f) => [`${f}:3:`, "invalid JSON"],
  },
  { name: "a line that is an array", content: '{"text": "a"}\n[1, 2, 3]\n', expected: (f) => [`${f}:2:`, "array"] },
  {
    name: "a row with neither text nor input_ids",
    content: '{"txt": "a"}\n',
    expected: (f) => [`${f}:1:`, '"text"', '"input_ids"', '"txt"'],
  },
  {
    name: '"text" that is not a string',
    content: '{"text": "fine"}\n{"text": 5}\n',
    expected: (f) => [`${f}:2:`, '"text"', "string", "5"],
  },
  { name: 'empty "text"', content: '{"text": ""}\n', expected: (f) => [`${f}:1:`, '"text"', "empty"] },
  {
    name: "an input id outside the vocabulary names the index and the range",
    content: '{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 2, 512]}\n',
    expected: (f) => [`${f}:2:`, '"input_ids"[2]', "512", "0…511"],
  },
  {
    name: "invalid UTF-8 names the line",
    content: Buffer.concat([Buffer.from('{"text": "a"}\n{"text": "'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('"}\n')]),
    expected: (f) => [`${f}:2:`, "UTF-8"],
  },
  { name: "an empty file", content: "", expected: () => ["empty"] },
  {
    name: "rows of one token each leave nothing to score (was: exit 0 with a null loss)",
    content: '{"input_ids": [1]}\n{"input_ids": [5]}\n',
    expected: () => ["no token to score", "a row of n tokens scores n − 1"],
  },
];

for (const c of DATA_CASES) {
  test(`eval --data: ${c.name}`, (t) => {
    const file = writeFile(testDir(t, "data"), "data.jsonl", c.content);
    expectCliError(evalOn(STORIES, file), [file, ...c.expected(file)]);
  });
}

test("eval --data: a missing file", (t) => {
  const file = path.join(testDir(t, "data"), "nope.jsonl");
  expectCliError(evalOn(STORIES, file), [file, "not found"]);
});

// ---- config.json (eval --model) ----

const CONFIG_CASES: { name: string; edit: (c: Record<string, unknown>) => void; expected: string[] }[] = [
  {
    name: "an unsupported model_type lists the supported ones",
    edit: (c) => (c.model_type = "bert"),
    expected: ["model_type: expected one of", '"llama"', '"mistral"', '"qwen2"', '"gpt2"', 'got "bert"'],
  },
  {
    name: "an unsupported rope_scaling type",
    edit: (c) => (c.rope_scaling = { type: "yarn", factor: 4 }),
    expected: ["rope_scaling.type: expected", '"linear"', 'got "yarn"'],
  },
  {
    name: "num_key_value_heads that does not divide num_attention_heads",
    edit: (c) => (c.num_key_value_heads = 3),
    expected: ["num_key_value_heads: expected a divisor of num_attention_heads (8), got 3"],
  },
  {
    name: "hidden_size missing",
    edit: (c) => delete c.hidden_size,
    expected: ["hidden_size: expected a positive integer (the field is required), got nothing"],
  },
  {
    name: "hidden_size of the wrong type",
    edit: (c) => (c.hidden_size = "64"),
    expected: ['hidden_size: expected a positive integer, got "64"'],
  },
  {
    name: "max_position_embeddings of 1 leaves nothing to score (was: exit 0 with a null loss)",
    edit: (c) => (c.max_position_embeddings = 1),
    expected: ["max_position_embeddings: expected an integer ≥ 2", "got 1"],
  },
  {
    name: "quantization_config is rejected, pointing at loralab's own quantization",
    edit: (c) => (c.quantization_config = { quant_method: "bitsandbytes", load_in_4bit: true }),
    expected: [
      "quantization_config: expected no quantization_config",
      "--quantize nf4",
      'quantize: "nf4"',
      '"quant_method":"bitsandbytes"',
    ],
  },
];

for (const c of CONFIG_CASES) {
  test(`eval --model, config.json: ${c.name}`, (t) => {
    const dir = storiesCopy(testDir(t, "model"), "model", { config: c.edit });
    expectCliError(evalOn(dir, goodData(t)), [path.join(dir, "config.json"), ...c.expected]);
  });
}

test("eval --model: a directory that does not exist", (t) => {
  const dir = path.join(testDir(t, "model"), "no-such-model");
  expectCliError(evalOn(dir, goodData(t)), [dir, "not found"]);
});

test("eval --model: a directory without config.json", (t) => {
  const dir = testDir(t, "model");
  expectCliError(evalOn(dir, goodData(t)), [path.join(dir, "config.json"), "not found"]);
});

test("eval --model: config.json that is not JSON", (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model");
  fs.writeFileSync(path.join(dir, "config.json"), '{"model_type": "llama",');
  expectCliError(evalOn(dir, goodData(t)), [path.join(dir, "config.json"), "invalid JSON"]);
});

// ---- tensors that do not fit config.json ----

test("eval --model: a checkpoint missing a tensor", async (t) => {
  const name = "model.layers.3.mlp.up_proj.weight";
  const dir = await storiesWithTensors(testDir(t, "model"), "model", (ts) => assert.ok(ts.delete(name)));
  expectCliError(evalOn(dir, goodData(t)), [dir, "missing", `"${name}"`]);
});

test("eval --model: a tensor whose shape config.json contradicts", async (t) => {
  const dir = await writeTinyCheckpoint(path.join(testDir(t, "model"), "tiny"), "llama", 7);
  const file = path.join(dir, "config.json");
  const config = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, number>;
  config.intermediate_size! += 16;
  fs.writeFileSync(file, JSON.stringify(config));
  const data = writeFile(testDir(t, "data"), "ids.jsonl", '{"input_ids": [1, 2, 3, 4]}\n');
  expectCliError(evalOn(dir, data), [dir, '"model.layers.0.mlp.gate_proj.weight"', "[48, 32]", "[64, 32]"]);
});

test("eval --model: an unexpected extra tensor", async (t) => {
  const name = "model.layers.0.mlp.extra_proj.weight";
  const dir = await storiesWithTensors(testDir(t, "model"), "model", (ts) => ts.set(name, { shape: [2, 2], data: new Float32Array(4) }));
  expectCliError(evalOn(dir, goodData(t)), [dir, `"${name}"`]);
});

test("eval --model: a truncated model.safetensors", (t) => {
  const dir = storiesCopy(testDir(t, "model"), "model");
  const file = path.join(dir, "model.safetensors");
  fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
  expectCliError(evalOn(dir, goodData(t)), [file]);
});

// ---- flags ----

const FLAG_CASES: { name: string; args: string[]; expected: string[] }[] = [
  { name: "eval without --model", args: ["eval", "--data", "x.jsonl"], expected: ["--model", "required"] },
  { name: "generate without --model", args: ["generate", "--ids", "1"], expected: ["--model", "required"] },
  { name: "eval without --data", args: ["eval", "--model", STORIES], expected: ["--data", "required"] },
  {
    name: "--metrics with an unknown metric lists the available ones",
    args: ["--metrics", "meteor"],
    expected: ["--metrics", '"meteor"', "perplexity"],
  },
  {
    name: "--metrics with an unknown metric after a known one",
    args: ["--metrics", "perplexity,meteor"],
    expected: ["--metrics", '"meteor"'],
  },
  { name: "an unknown flag to eval", args: ["--bogus"], expected: ["--bogus"] },
  { name: "an unknown flag to info", args: ["info", "--verbose"], expected: ["--verbose"] },
  { name: "--max-new-tokens -1", args: generateWith("--ids", "1", "--max-new-tokens", "-1"), expected: ["--max-new-tokens"] },
  {
    name: "--max-new-tokens=-1",
    args: generateWith("--ids", "1", "--max-new-tokens=-1"),
    expected: ["--max-new-tokens", "positive integer", '"-1"'],
  },
  {
    name: "--max-new-tokens 0 (was: a raw tokenizer error with a stack)",
    args: generateWith("--prompt", "Once", "--max-new-tokens", "0"),
    expected: ["--max-new-tokens", "positive integer", '"0"'],
  },
  { name: "--ids with a non-number", args: generateWith("--ids", "1,x"), expected: ["--ids", "item 2", '"x"'] },
  { name: "--ids with an id outside the vocabulary", args: generateWith("--ids", "9999"), expected: ["--ids", '"9999"', "0…511"] },
  { name: "both --prompt and --ids", args: generateWith("--prompt", "Once", "--ids", "1"), expected: ["--prompt", "--ids"] },
];

for (const c of FLAG_CASES) {
  test(`flags: ${c.name}`, (t) => {
    // Cases that start with a flag are eval flags on a good model and data file.
    const args = c.args[0]!.startsWith("--") ? [...evalOn(STORIES, goodData(t)), ...c.args] : c.args;
    expectCliError(args, c.expected);
  });
}

test("flags: eval --stride beyond the model's context (was: an internal error with a stack)", (t) => {
  expectCliError([...evalOn(STORIES, goodData(t)), "--stride", "100000"], ["--stride: expected an integer in 1…512", 'got "100000"']);
});

test("an unknown command exits 2 and names it", () => {
  const run = runCli(["frobnicate"]);
  assert.equal(run.status, 2);
  assert.equal(run.stdout, "");
  assert.equal(run.stderr.split("\n")[0], 'loralab: unknown command "frobnicate"');
  assert.match(run.stderr, /usage: loralab <command>/);
  assert.doesNotMatch(run.stderr, /^\s+at /m);
});
