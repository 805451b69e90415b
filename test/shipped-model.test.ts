/**
 * The model shipped in the package, models/tiny-moby (trained by scripts/train-tokenizer.ts and
 * scripts/pretrain.ts): it resolves by name from anywhere (CLI and DSL), its tokenizer round-trips text,
 * it has learned its held-out Moby-Dick text, and greedy generation is deterministic.
 * Run `npx tsc -p .` first: bin/loralab.js imports the compiled dist/.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../src/backend/index.js";
import { writeSafetensors } from "../src/checkpoint/safetensors.js";
import { resolveModel } from "../src/models/reference.js";
import { mobyDickSplit, packBlocks } from "../src/data/moby-dick.js";
import { generate } from "../src/models/generation.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { initialWeights } from "../src/models/init.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { packageRoot } from "../src/core/package.js";
import { shippedModelDir } from "../src/models/shipped.js";
import { model } from "../dsl/index.js";
import { CLI, REPO, tempDir } from "./helpers/paths.js";

const DIR = path.join(REPO, "models/tiny-moby");
/** The block size scripts/pretrain.ts trained and evaluated with. */
const BLOCK_SIZE = 128;

const work = tempDir("shipped");
let shipped: LoadedModel;

before(async () => {
  await initBackend();
  shipped = await loadModel("tiny-moby");
});

after(() => {
  shipped?.model.dispose();
  fs.rmSync(work, { recursive: true, force: true });
});

const tokenizer = () => shipped.tokenizer!;

describe("shipped model tiny-moby", () => {
  test("the name resolves to the packaged directory, from any working directory, before the hub", async () => {
    assert.equal(packageRoot(), REPO);
    assert.equal(shippedModelDir("tiny-moby"), DIR);
    assert.equal(shipped.dir, DIR);
    const cwd = process.cwd();
    process.chdir(work);
    try {
      assert.equal(await resolveModel("tiny-moby", { offline: true }), DIR);
    } finally {
      process.chdir(cwd);
    }
    const files = [
      "config.json",
      "model.safetensors",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "README.md",
    ];
    assert.deepEqual(
      files.filter((f) => !fs.existsSync(path.join(DIR, f))),
      [],
      "files missing from models/tiny-moby/",
    );
    assert.ok(fs.statSync(path.join(DIR, "model.safetensors")).size < 5_000_000, "the weights stay small");
    assert.deepEqual(
      { type: shipped.config.modelType, layers: shipped.config.numLayers, vocab: shipped.config.vocabSize, eos: shipped.eosTokenIds },
      { type: "llama", layers: 4, vocab: 1024, eos: [tokenizer().eosTokenId] },
    );
  });

  const ROUND_TRIPS: [name: string, text: () => string][] = [
    [
      "prose with dashes",
      () =>
        "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.",
    ],
    [
      "whitespace: leading, trailing, tabs, CRLF, runs",
      () => "  Leading and trailing spaces  \n\n\ttabs,\r\nCRLF, and   runs   of   spaces.  ",
    ],
    ["digits and punctuation", () => "Digits 0 1 12 123 1234 3.14159 -42 1,000,000 (1851); marks !?.,;:'\"()[]{}<>@#$%^&*_+=|\\/~`"],
    [
      "unicode and contractions",
      () => "Unicode: café, naïve, Œdipus, Ἀχιλλεύς, חן, 日本語, 🐋🐳, e\u0301; it's, we've, I'm, you'll, she'd.",
    ],
    ["the held-out part of the book", () => mobyDickSplit().validation],
  ];

  for (const [name, sample] of ROUND_TRIPS) {
    test(`its tokenizer round-trips text exactly: ${name}`, () => {
      const t = tokenizer();
      const text = sample();
      const ids = t.encode(text);
      assert.equal(ids[0], t.bosTokenId, "BOS is added (add_bos_token)");
      assert.notEqual(ids.at(-1), t.eosTokenId, "no EOS (add_eos_token false)");
      assert.ok(ids.every((id) => id >= 0 && id < 1024));
      assert.equal(t.decode(ids), text);
      assert.equal(t.decode(t.encode(text, { specialTokens: false })), text);
    });
  }

  test("its tokenizer shows BOS when asked to keep special tokens", () => {
    const t = tokenizer();
    assert.equal(t.decode([t.bosTokenId!, ...t.encode("Ahab", { specialTokens: false })], { skipSpecialTokens: false }), "<s>Ahab");
  });

  test("held-out perplexity is far below uniform and below an untrained model of the same config", async () => {
    const blocks = packBlocks(mobyDickSplit().validation, tokenizer(), BLOCK_SIZE);
    const scored = perplexity(shipped.model, blocks, { batchSize: 16 });
    const vocab = shipped.config.vocabSize;
    assert.ok(scored.perplexity < vocab / 10, `validation perplexity ${scored.perplexity} should be < ${vocab / 10}`);
    // The model card reports this very number.
    const card = fs.readFileSync(path.join(DIR, "README.md"), "utf8");
    const reported = Number(/\*\*validation perplexity ([\d.]+)\*\*/.exec(card)?.[1]);
    assert.ok(Math.abs(scored.perplexity - reported) < 0.01 * reported, `card says ${reported}, measured ${scored.perplexity}`);

    // An untrained model (seeded N(0, 0.02²) weights, the script's initialisation) on the first blocks.
    const dir = path.join(work, "untrained");
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(DIR, "config.json"), path.join(dir, "config.json"));
    await writeSafetensors(path.join(dir, "model.safetensors"), initialWeights(shipped.config, { seed: 7 }));
    const untrained = await loadModel(dir);
    try {
      const some = blocks.slice(0, 16);
      const random = perplexity(untrained.model, some, { batchSize: 16 }).perplexity;
      const trained = perplexity(shipped.model, some, { batchSize: 16 }).perplexity;
      assert.ok(random > vocab / 2, `an untrained model is near uniform: ${random}`);
      assert.ok(trained < random / 10, `trained ${trained} vs untrained ${random}`);
    } finally {
      untrained.model.dispose();
    }
  });

  test('greedy generation from "Call me" is deterministic, in the library, the DSL and the CLI (run from elsewhere)', async () => {
    const prompt = tokenizer().encode("Call me");
    const first = generate(shipped.model, prompt, { maxNewTokens: 24, eosTokenIds: shipped.eosTokenIds });
    const second = generate(shipped.model, prompt, { maxNewTokens: 24, eosTokenIds: shipped.eosTokenIds });
    assert.deepEqual(second.ids, first.ids);
    assert.equal(first.ids.length, 24);
    const text = tokenizer().decode(first.ids);
    assert.match(text, /[a-z]{2,}/, `the continuation has words: ${JSON.stringify(text)}`);

    const dsl = await model("tiny-moby");
    assert.equal(dsl.loaded.dir, DIR);
    const viaDsl = await dsl.generate("Call me", { maxNewTokens: 24 });
    assert.deepEqual(viaDsl.ids, first.ids);
    assert.equal(viaDsl.text, text);
    dsl.loaded.model.dispose();

    const run = spawnSync(
      process.execPath,
      [CLI, "generate", "--model", "tiny-moby", "--prompt", "Call me", "--max-new-tokens", "24", "--json"],
      {
        cwd: work,
        encoding: "utf8",
        env: { ...process.env, LORALAB_BACKEND: "" },
      },
    );
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { ids: number[]; text: string };
    assert.deepEqual(out.ids, first.ids);
    assert.equal(out.text, text);
  });

  test("`loralab quickstart` (npm start) runs on the shipped model by default", () => {
    const env: Record<string, string | undefined> = { ...process.env, LORALAB_BACKEND: "" };
    delete env.LORALAB_MODEL;
    const run = spawnSync(process.execPath, [CLI, "quickstart"], { cwd: work, encoding: "utf8", env });
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stdout,
      new RegExp(`^model: ${DIR.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(llama, 4 layers, hidden 128, vocab 1024\\)$`, "m"),
    );
    assert.match(run.stdout, /perplexity of "Call me Ishmael\./);
    assert.match(run.stdout, /greedy continuation of "Call me Ishmael\.":\n {2}Call me Ishmael\./);
  });
});
