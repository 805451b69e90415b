/**
 * Library-level properties of the engine that the reference comparison does not pin down: KV-cache
 * decoding equals full recomputation, padding does not change a row's loss, tensors are not leaked,
 * config defaults follow transformers, sampling filters, and the stories260K tokenizer.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { collate, disposeBatch, type Example } from "../src/data/batch.js";
import { generate } from "../src/models/generation.js";
import { tokenNll } from "../src/models/loss.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { KVCache, type CausalLM } from "../src/models/causal-lm.js";
import { parseModelConfig, type LlamaConfig } from "../src/models/config.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { Random } from "../src/core/random.js";
import { argmax, sampleToken, type SamplingOptions } from "../src/models/sampling.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { STORIES, tempDir } from "./helpers/paths.js";
import { TINY_KINDS, TINY_VOCAB, writeTinyCheckpoint, type TinyKind } from "./helpers/tiny-models.js";

const work = tempDir("model-test");
const models = new Map<string, LoadedModel>();
const model = (name: "stories" | TinyKind): CausalLM => models.get(name)!.model;

before(async () => {
  await initBackend();
  models.set("stories", await loadModel(STORIES));
  for (const [i, kind] of TINY_KINDS.entries())
    models.set(kind, await loadModel(await writeTinyCheckpoint(path.join(work, kind), kind, 500 + i)));
});

after(() => {
  for (const m of models.values()) m.model.dispose();
  fs.rmSync(work, { recursive: true, force: true });
});

/** A deterministic id sequence of `length` tokens below `vocab`, starting with `first`. */
function sequence(length: number, vocab: number, seed: number, first = 1): number[] {
  const random = new Random(seed);
  return [first, ...Array.from({ length: length - 1 }, () => random.int(vocab))];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Logits [T][V] of one sequence in a single forward pass. */
function fullLogits(m: CausalLM, ids: number[]): number[][] {
  const logits = tf.tidy(() => m.forward(tf.tensor2d([ids], [1, ids.length], "int32")).squeeze([0]));
  const out = logits.arraySync() as number[][];
  logits.dispose();
  return out;
}

/** Logits [T][V] of one sequence fed through a KV cache in chunks of the given sizes (1 = token by token). */
function cachedLogits(m: CausalLM, ids: number[], chunks: number[]): number[][] {
  const cache = new KVCache(m.config.numLayers);
  const out: number[][] = [];
  try {
    let start = 0;
    for (const size of chunks) {
      const chunk = ids.slice(start, start + size);
      const logits = tf.tidy(() => m.forward(tf.tensor2d([chunk], [1, chunk.length], "int32"), { cache }).squeeze([0]));
      out.push(...(logits.arraySync() as number[][]));
      logits.dispose();
      start += size;
      assert.equal(cache.length, start, "the cache holds every position fed so far");
    }
    assert.equal(start, ids.length);
  } finally {
    cache.dispose();
  }
  return out;
}

describe("KV cache", () => {
  // 14 tokens: longer than the tiny Mistral's sliding window (6) and the tiny Llama's original RoPE context (16 / 8 scaled).
  const cases = [["stories", 512, 24], ...TINY_KINDS.map((k) => [k, TINY_VOCAB, 14] as const)] as const;

  for (const [name, vocab, length] of cases) {
    test(`${name}: decoding through the cache equals full recomputation at every position`, () => {
      const m = model(name);
      const ids = sequence(length, vocab, length + vocab);
      const full = fullLogits(m, ids);
      const byToken = cachedLogits(
        m,
        ids,
        ids.map(() => 1),
      );
      const prefilled = cachedLogits(m, ids, [5, 3, ...Array(length - 8).fill(1)]); // prompt, then a chunk, then tokens
      for (let t = 0; t < length; t++) {
        const d1 = maxAbsDiff(byToken[t]!, full[t]!);
        const d2 = maxAbsDiff(prefilled[t]!, full[t]!);
        assert.ok(d1 < 1e-4, `${name} position ${t}: token-by-token max |Δ| ${d1}`);
        assert.ok(d2 < 1e-4, `${name} position ${t}: chunked max |Δ| ${d2}`);
      }
    });
  }
});

describe("padding", () => {
  /** Mean NLL of each example's scored tokens when all are run as one right-padded batch with `padId`. */
  function batchedRowLosses(m: CausalLM, examples: Example[], padId: number): number[] {
    const batch = collate(examples, padId);
    const { nll, mask } = tf.tidy(() => tokenNll(m.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels));
    const nlls = nll.arraySync();
    const masks = mask.arraySync();
    tf.dispose([nll, mask]);
    disposeBatch(batch);
    return nlls.map((row, b) => row.reduce((s, v) => s + v, 0) / masks[b]!.reduce((s, v) => s + v, 0));
  }

  const examples = [11, 4, 7, 2].map((len, i) => ({ inputIds: sequence(len, TINY_VOCAB, 40 + i) }));

  // The pad token's identity must not matter either.
  for (const [kind, padId] of [
    ["llama", 0],
    ["llama", 17],
    ["gpt2", 0],
    ["gpt2", 17],
  ] as const) {
    test(`${kind}: a batch right-padded with id ${padId} gives each row the loss it has alone`, () => {
      const m = model(kind);
      const alone = examples.map((e) => perplexity(m, [e]).loss);
      const batched = batchedRowLosses(m, examples, padId);
      batched.forEach((loss, i) => assert.ok(Math.abs(loss - alone[i]!) < 1e-5, `row ${i}: ${loss} vs ${alone[i]} alone`));
    });
  }

  for (const kind of ["llama", "gpt2"] as const) {
    test(`${kind}: perplexity() over a padded batch gives each row the loss it has alone`, () => {
      const m = model(kind);
      const alone = examples.map((e) => perplexity(m, [e]).loss);
      const viaPerplexity = perplexity(m, examples, { batchSize: examples.length }).perExample;
      viaPerplexity.forEach((r, i) =>
        assert.ok(Math.abs(r.loss - alone[i]!) < 1e-5, `row ${i} via perplexity(): ${r.loss} vs ${alone[i]}`),
      );
    });
  }
});

describe("memory", () => {
  for (const name of ["stories", "llama", "gpt2"] as const) {
    test(`${name}: forward+loss and generate() leave no tensors behind`, () => {
      const m = model(name);
      const vocab = m.config.vocabSize;
      const examples = [{ inputIds: sequence(12, vocab, 1) }, { inputIds: sequence(5, vocab, 2) }];
      const before = tf.memory().numTensors;
      for (let i = 0; i < 20; i++) assert.ok(Number.isFinite(perplexity(m, examples).loss));
      const prompt = sequence(4, vocab, 3);
      generate(m, prompt, { maxNewTokens: 8 });
      generate(m, prompt, { maxNewTokens: 8, temperature: 0.9, topK: 10, topP: 0.9, seed: 5 });
      const stopped = generate(m, prompt, { maxNewTokens: 8, eosTokenIds: [...Array(vocab).keys()] }); // stops at the first token
      assert.equal(stopped.stoppedBy, "eos");
      assert.equal(tf.memory().numTensors, before);
    });
  }
});

describe("config parsing", () => {
  const LLAMA = {
    model_type: "llama",
    vocab_size: 100,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 8,
  };
  const llama = (extra: Record<string, unknown> = {}) => parseModelConfig({ ...LLAMA, ...extra }, "config.json") as LlamaConfig;

  test("tie_word_embeddings defaults: llama untied, gpt2 tied", () => {
    assert.equal(llama().tieWordEmbeddings, false);
    assert.equal(parseModelConfig({ model_type: "gpt2" }, "config.json").tieWordEmbeddings, true);
    assert.equal(llama({ tie_word_embeddings: true }).tieWordEmbeddings, true);
  });

  test("qwen2 has q/k/v biases (and none on o_proj); llama only with attention_bias", () => {
    const qwen2 = llama({ model_type: "qwen2" });
    assert.deepEqual([qwen2.qkvBias, qwen2.oBias], [true, false]);
    assert.deepEqual([llama().qkvBias, llama().oBias], [false, false]);
    assert.deepEqual([llama({ attention_bias: true }).qkvBias, llama({ attention_bias: true }).oBias], [true, true]);
  });

  test("head_dim comes from config.json when given, else hidden_size / num_attention_heads", () => {
    assert.equal(llama().headDim, 8);
    assert.equal(llama({ head_dim: 16 }).headDim, 16);
    assert.equal(llama().numKvHeads, 8, "num_key_value_heads defaults to num_attention_heads");
  });

  test("eos_token_id: a list is kept as a list, a number becomes a one-element list", () => {
    assert.deepEqual(llama({ eos_token_id: [128001, 128009] }).eosTokenIds, [128001, 128009]);
    assert.deepEqual(llama({ eos_token_id: 2 }).eosTokenIds, [2]);
    assert.deepEqual(llama().eosTokenIds, []);
  });
});

describe("sampling", () => {
  const LOGITS = [Math.log(0.6), Math.log(0.3), Math.log(0.1)];

  /** How often each token is drawn in `n` seeded draws. */
  function counts(logits: number[], options: SamplingOptions, n: number, seed = 1): number[] {
    const random = new Random(seed);
    const c = logits.map(() => 0);
    for (let i = 0; i < n; i++) c[sampleToken(logits, options, random)]!++;
    return c;
  }

  function randomLogits(random: Random, n: number): number[] {
    return Array.from({ length: n }, () => (random.next() - 0.5) * 10);
  }

  test("temperature 0 is argmax, whatever the other options", () => {
    const random = new Random(11);
    for (let i = 0; i < 50; i++) {
      const logits = randomLogits(random, 20);
      const best = logits.indexOf(Math.max(...logits));
      assert.equal(argmax(logits), best);
      assert.equal(sampleToken(logits, { temperature: 0 }, random), best);
      assert.equal(sampleToken(logits, { temperature: 0, topK: 5, topP: 0.5 }, random), best);
    }
  });

  test("top-k 1 is argmax at any temperature", () => {
    const random = new Random(12);
    for (const temperature of [0.1, 0.7, 1, 2, 50]) {
      for (let i = 0; i < 50; i++) {
        const logits = randomLogits(random, 20);
        assert.equal(sampleToken(logits, { temperature, topK: 1 }, random), argmax(logits), `temperature ${temperature}`);
      }
    }
  });

  test("top-p keeps the smallest set of most likely tokens reaching p", () => {
    assert.deepEqual(counts(LOGITS, { temperature: 1, topP: 0.5 }, 200), [200, 0, 0]);
    const c = counts(LOGITS, { temperature: 1, topP: 0.8 }, 200);
    assert.equal(c[2], 0);
    assert.ok(c[0]! > 0 && c[1]! > 0, `both kept tokens are drawn: ${c}`);
  });

  test("top-k 2 never draws the third token", () => {
    const c = counts(LOGITS, { temperature: 1, topK: 2 }, 2000);
    assert.equal(c[2], 0);
    assert.ok(Math.abs(c[0]! / 2000 - 2 / 3) < 0.05, `renormalised over the top 2: ${c}`);
  });

  test("a plain draw at temperature 1 follows the softmax", () => {
    const logits = [2, 1, 0.5, -1, 0, 1.5];
    const z = logits.reduce((s, l) => s + Math.exp(l), 0);
    const n = 20000;
    const c = counts(logits, { temperature: 1 }, n, 99);
    logits.forEach((l, i) => {
      const p = Math.exp(l) / z;
      assert.ok(Math.abs(c[i]! / n - p) < 0.02, `token ${i}: frequency ${c[i]! / n} vs softmax ${p}`);
    });
  });
});

describe("tokenizer (stories260K)", () => {
  const tokenizer = Tokenizer.fromDirectory(STORIES);
  const SENTENCE = "Once upon a time, there was a cat.";
  const IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 294, 426];

  test("encode adds BOS as tokenizer_config.json says", () => {
    assert.deepEqual(tokenizer.encode(SENTENCE), IDS);
    assert.equal(tokenizer.bosTokenId, 1);
  });

  test("specialTokens: false drops the BOS", () => {
    assert.deepEqual(tokenizer.encode(SENTENCE, { specialTokens: false }), IDS.slice(1));
  });

  for (const text of [SENTENCE, "Tom and Sue went to the beach. They built a big sand castle and laughed."]) {
    test(`decode round-trips ${JSON.stringify(text.slice(0, 20))}…, with and without BOS`, () => {
      assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
      assert.equal(tokenizer.decode(tokenizer.encode(text, { specialTokens: false })), text);
    });
  }

  test("decode keeps special tokens when asked", () => {
    assert.equal(tokenizer.decode(IDS, { skipSpecialTokens: false }), `<s> ${SENTENCE}`);
  });

  test("decode of no ids is the empty text", () => {
    assert.equal(tokenizer.decode([]), "");
  });
});
