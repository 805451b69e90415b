/**
 * Every user error through the real binary: exit code 2, one stderr line "loralab <command>: …" that
 * names the file / field / flag at fault, and no stack trace. Malformed inputs are built in a temp dir,
 * broken model directories from copies of the real stories260K files or from a tiny seeded checkpoint.
 * Run `npx tsc -p .` first: bin/loralab.js imports the compiled dist/.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../src/checkpoint/safetensors.js";
import { CLI, REPO, STORIES, tempDir } from "./helpers/paths.js";
import { expectUserError } from "./helpers/cli.js";
import { writeTinyCheckpoint } from "./helpers/tiny-models.js";

const work = tempDir("errors-test");
after(() => fs.rmSync(work, { recursive: true, force: true }));

let fileCount = 0;
/** A data file with exactly these bytes. */
function dataFile(content: string | Buffer): string {
  const file = path.join(work, `data-${++fileCount}.jsonl`);
  fs.writeFileSync(file, content);
  return file;
}

const GOOD_DATA = dataFile('{"text": "Once upon a time"}\n');
const IDS_DATA = dataFile('{"input_ids": [1, 2, 3, 4]}\n');

/** A writable copy of the real stories260K directory, with `edit` applied to its config.json. */
function storiesCopy(name: string, edit?: (config: Record<string, unknown>) => void): string {
  const dir = path.join(work, name);
  fs.cpSync(STORIES, dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644); // the shared files are read-only
  if (edit) {
    const file = path.join(dir, "config.json");
    const config = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    edit(config);
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
  }
  return dir;
}

/** A stories260K copy whose model.safetensors holds `change(tensors)` instead. */
async function storiesWithTensors(name: string, change: (t: Map<string, TensorToWrite>) => void): Promise<string> {
  const dir = storiesCopy(name);
  const file = path.join(dir, "model.safetensors");
  const tensors = new Map<string, TensorToWrite>([...(await readSafetensors(file))].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
  change(tensors);
  await writeSafetensors(file, tensors);
  return dir;
}

const evalOn = (model: string, data = GOOD_DATA) => ["eval", "--model", model, "--data", data];

describe("data errors (eval --data)", () => {
  const evalData = (data: string, ...expected: string[]) => expectUserError(evalOn(STORIES, data), data, ...expected);

  test("missing file", () => {
    evalData(path.join(work, "nope.jsonl"), "not found");
  });

  test("invalid JSON names the line", () => {
    const f = dataFile('{"text": "a"}\n{"text": "b"}\n{"text": oops}\n');
    evalData(f, `${f}:3:`, "invalid JSON");
  });

  test("a line that is an array", () => {
    const f = dataFile('{"text": "a"}\n[1, 2, 3]\n');
    evalData(f, `${f}:2:`, "array");
  });

  test("a row with neither text nor input_ids", () => {
    const f = dataFile('{"txt": "a"}\n');
    evalData(f, `${f}:1:`, '"text"', '"input_ids"', '"txt"');
  });

  test('"text" that is not a string', () => {
    const f = dataFile('{"text": "fine"}\n{"text": 5}\n');
    evalData(f, `${f}:2:`, '"text"', "string", "5");
  });

  test('empty "text"', () => {
    const f = dataFile('{"text": ""}\n');
    evalData(f, `${f}:1:`, '"text"', "empty");
  });

  test("an input id outside the vocabulary names the index and the range", () => {
    const f = dataFile('{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 2, 512]}\n');
    evalData(f, `${f}:2:`, '"input_ids"[2]', "512", "0…511");
  });

  test("invalid UTF-8 names the line", () => {
    const f = dataFile(Buffer.concat([Buffer.from('{"text": "a"}\n{"text": "'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('"}\n')]));
    evalData(f, `${f}:2:`, "UTF-8");
  });

  test("empty file", () => {
    evalData(dataFile(""), "empty");
  });
});

describe("model errors (eval --model)", () => {
  test("directory does not exist", () => {
    const dir = path.join(work, "no-such-model");
    expectUserError(evalOn(dir), dir, "not found");
  });

  test("directory without config.json", () => {
    const dir = path.join(work, "empty-model");
    fs.mkdirSync(dir);
    expectUserError(evalOn(dir), path.join(dir, "config.json"), "not found");
  });

  test("config.json that is not JSON", () => {
    const dir = storiesCopy("bad-json");
    fs.writeFileSync(path.join(dir, "config.json"), '{"model_type": "llama",');
    expectUserError(evalOn(dir), path.join(dir, "config.json"), "invalid JSON");
  });

  test("unsupported model_type lists the supported ones", () => {
    const dir = storiesCopy("bert", (c) => {
      c.model_type = "bert";
    });
    expectUserError(evalOn(dir), path.join(dir, "config.json"), '"model_type"', '"bert"', '"llama"', '"mistral"', '"qwen2"', '"gpt2"');
  });

  test("unsupported rope_scaling", () => {
    const dir = storiesCopy("yarn", (c) => {
      c.rope_scaling = { type: "yarn", factor: 4 };
    });
    expectUserError(evalOn(dir), path.join(dir, "config.json"), '"rope_scaling"', "yarn");
  });

  test("num_key_value_heads that does not divide num_attention_heads", () => {
    const dir = storiesCopy("kv-heads", (c) => {
      c.num_key_value_heads = 3;
    });
    expectUserError(evalOn(dir), path.join(dir, "config.json"), '"num_key_value_heads"', "3");
  });

  test("hidden_size missing", () => {
    const dir = storiesCopy("no-hidden", (c) => {
      delete c.hidden_size;
    });
    expectUserError(evalOn(dir), path.join(dir, "config.json"), '"hidden_size"', "required");
  });

  test("a checkpoint missing a tensor", async () => {
    const name = "model.layers.3.mlp.up_proj.weight";
    const dir = await storiesWithTensors("missing-tensor", (t) => assert.ok(t.delete(name)));
    expectUserError(evalOn(dir), dir, "missing", `"${name}"`);
  });

  test("a tensor whose shape config.json contradicts", async () => {
    const dir = await writeTinyCheckpoint(path.join(work, "tiny-shape"), "llama", 7);
    const file = path.join(dir, "config.json");
    const config = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, number>;
    config.intermediate_size! += 16;
    fs.writeFileSync(file, JSON.stringify(config));
    expectUserError(evalOn(dir, IDS_DATA), dir, '"model.layers.0.mlp.gate_proj.weight"', "[48, 32]", "[64, 32]");
  });

  test("an unexpected extra tensor", async () => {
    const name = "model.layers.0.mlp.extra_proj.weight";
    const dir = await storiesWithTensors("extra-tensor", (t) => {
      t.set(name, { shape: [2, 2], data: new Float32Array(4) });
    });
    expectUserError(evalOn(dir), dir, `"${name}"`);
  });

  test("a truncated model.safetensors", () => {
    const dir = storiesCopy("truncated");
    const file = path.join(dir, "model.safetensors");
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    expectUserError(evalOn(dir), file);
  });
});

describe("flag errors", () => {
  const generateWith = (...args: string[]) => ["generate", "--model", STORIES, ...args];

  test("missing --model", () => {
    expectUserError(["eval", "--data", GOOD_DATA], "--model", "required");
    expectUserError(["generate", "--ids", "1"], "--model", "required");
  });

  test("missing --data", () => {
    expectUserError(["eval", "--model", STORIES], "--data", "required");
  });

  test("--metrics with an unknown metric lists the available ones", () => {
    expectUserError([...evalOn(STORIES), "--metrics", "meteor"], "--metrics", '"meteor"', "perplexity");
    expectUserError([...evalOn(STORIES), "--metrics", "perplexity,meteor"], "--metrics", '"meteor"');
  });

  test("--max-new-tokens -1", () => {
    expectUserError(generateWith("--ids", "1", "--max-new-tokens", "-1"), "--max-new-tokens");
    expectUserError(generateWith("--ids", "1", "--max-new-tokens=-1"), "--max-new-tokens", "non-negative integer", '"-1"');
  });

  test("--ids with a non-number", () => {
    expectUserError(generateWith("--ids", "1,x"), "--ids", "item 2", '"x"');
  });

  test("--ids with an id outside the vocabulary", () => {
    expectUserError(generateWith("--ids", "9999"), "--ids", '"9999"', "0…511");
  });

  test("both --prompt and --ids", () => {
    expectUserError(generateWith("--prompt", "Once", "--ids", "1"), "--prompt", "--ids");
  });

  test("an unknown flag", () => {
    expectUserError([...evalOn(STORIES), "--bogus"], "--bogus");
    expectUserError(["info", "--verbose"], "--verbose");
  });

  test("an unknown command exits 2 and names it", () => {
    const run = spawnSync(process.execPath, [CLI, "frobnicate"], { cwd: REPO, encoding: "utf8" });
    assert.equal(run.status, 2);
    assert.equal(run.stdout, "");
    assert.equal(run.stderr.split("\n")[0], 'loralab: unknown command "frobnicate"');
    assert.match(run.stderr, /usage: loralab <command>/);
    assert.doesNotMatch(run.stderr, /^\s+at /m);
  });
});
