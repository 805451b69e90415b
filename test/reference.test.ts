/**
 * The engine against the independent PyTorch reference: stories260K (real weights trained elsewhere)
 * and seeded tiny checkpoints of every supported architecture (Llama with llama3 RoPE scaling,
 * Qwen2 with q/k/v biases, Mistral with a sliding window, GPT-2 with and without the "transformer." prefix).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { initBackend, tf } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { tokenNll } from "../src/models/loss.js";
import { generate } from "../src/models/generation.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { buildReferenceCases } from "./helpers/reference-cases.js";
import { referenceOutputs, type ReferenceCase, type ReferenceResult } from "./helpers/reference.js";
import { tempDir } from "./helpers/paths.js";

const work = tempDir("reference-test");
// Built before the tests are declared (one test per case); the reference runs in before().
const cases: ReferenceCase[] = await buildReferenceCases(work);
let results: Record<string, ReferenceResult> = {};
const models = new Map<string, LoadedModel>();

async function model(dir: string): Promise<LoadedModel> {
  if (!models.has(dir)) models.set(dir, await loadModel(dir));
  return models.get(dir)!;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

before(async () => {
  await initBackend();
  const out = referenceOutputs(cases, work);
  results = out.results;
  console.log(`# reference outputs: ${out.source}`);
});

after(() => {
  for (const m of models.values()) m.model.dispose();
  fs.rmSync(work, { recursive: true, force: true });
});

type Case<K extends ReferenceCase["kind"]> = Extract<ReferenceCase, { kind: K }>;
const ofKind = <K extends ReferenceCase["kind"]>(kind: K) => cases.filter((c): c is Case<K> => c.kind === kind);

describe("engine vs PyTorch reference: loss (mean NLL over non-padding tokens) within 1e-4, per-token NLL within 1e-4", () => {
  for (const c of ofKind("loss")) {
    test(c.name, async () => {
      const ref = results[c.name]!;
      assert.equal(ref.error, undefined, `${c.name}: reference failed: ${ref.error}`);
      const { model: m } = await model(c.model);
      const masks = c.attention_mask ?? c.input_ids.map((row) => row.map(() => 1));
      const examples = c.input_ids.map((row, i) => ({
        inputIds: row.slice(
          0,
          masks[i]!.reduce((a, b) => a + b, 0),
        ),
      }));
      const ours = perplexity(m, examples, { batchSize: examples.length });
      assert.equal(ours.tokens, ref.tokens, `${c.name}: token count`);
      assert.ok(Math.abs(ours.loss - ref.loss!) < 1e-4, `${c.name}: loss ${ours.loss} vs reference ${ref.loss}`);
      if (ref.nll) {
        const ids = tf.tensor2d(c.input_ids, undefined, "int32");
        const mask = tf.tensor2d(masks, undefined, "int32");
        const labels = tf.tidy(() => tf.where(mask.cast("bool"), ids, tf.fill(ids.shape, -100, "int32")));
        const { nll } = tf.tidy(() =>
          tokenNll(m.forward(ids as tf.Tensor2D, { attentionMask: mask as tf.Tensor2D }), labels as tf.Tensor2D),
        );
        const got = nll.arraySync();
        tf.dispose([ids, mask, labels, nll]);
        ref.nll.forEach((row, b) =>
          row.forEach((v, t) => {
            if (v !== null) assert.ok(Math.abs(got[b]![t]! - v) < 1e-4, `${c.name}: nll[${b}][${t}] ${got[b]![t]} vs ${v}`);
          }),
        );
      }
    });
  }
});

describe("engine vs PyTorch reference: logits within 1e-4 (relative to their scale)", () => {
  for (const c of ofKind("logits")) {
    test(c.name, async () => {
      const ref = results[c.name]!;
      const { model: m } = await model(c.model);
      const logits = tf.tidy(() => m.forward(tf.tensor2d([c.input_ids], undefined, "int32") as tf.Tensor2D).squeeze([0])); // [T, V]
      const all = logits.arraySync() as number[][];
      logits.dispose();
      const positions = (c.positions ?? c.input_ids.map((_, i) => i)).map((p) => (p < 0 ? c.input_ids.length + p : p));
      positions.forEach((p, i) => {
        const scale = Math.max(1, ...ref.logits[i]!.map(Math.abs));
        const diff = maxAbsDiff(all[p]!, ref.logits[i]!);
        assert.ok(diff / scale < 1e-4 && diff < 1e-3, `${c.name}: position ${p}: max |Δ| ${diff} (scale ${scale})`);
      });
    });
  }
});

describe("engine vs PyTorch reference: greedy generation with the KV cache yields exactly the reference ids", () => {
  for (const c of ofKind("greedy")) {
    test(c.name, async () => {
      const ref = results[c.name]!;
      const loaded = await model(c.model);
      const out = generate(loaded.model, c.input_ids, {
        maxNewTokens: c.max_new_tokens,
        temperature: 0,
        eosTokenIds: c.eos ? loaded.eosTokenIds : [],
      });
      assert.deepEqual(out.ids, ref.new_ids, c.name);
    });
  }
});
