/** LoRA layers and adapters: PEFT semantics on real tfjs, checked on tiny checkpoints and stories260K. */
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { loadAdapter, saveAdapter } from "../src/lora/adapter-io.js";
import { type LoraConfigInput, resolveLoraConfig } from "../src/lora/config.js";
import { findTargets, targetSpec } from "../src/lora/targets.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { collate, disposeBatch } from "../src/data/batch.js";
import { tokenNll } from "../src/models/loss.js";
import { saveModelDirectory } from "../src/models/save.js";
import { readSafetensors } from "../src/checkpoint/safetensors.js";
import type { TinyKind } from "./helpers/tiny-models.js";
import { STORIES, tempDir } from "./helpers/paths.js";
import { tinyData, tinyModel } from "./helpers/tiny-train.js";

const work = tempDir("lora-test");
after(() => fs.rmSync(work, { recursive: true, force: true }));

before(async () => {
  await initBackend();
});

const lossOf = (m: Parameters<typeof perplexity>[0], data = tinyData(6)) => perplexity(m, data).loss;

/** A tiny model freed when the test ends. */
async function tiny(t: TestContext, kind: TinyKind): Promise<LoadedModel> {
  const loaded = await tinyModel(kind);
  t.after(() => loaded.model.dispose());
  return loaded;
}

describe("targeting (PEFT rules)", () => {
  let llama: LoadedModel;
  before(async () => {
    llama = await tinyModel("llama");
  });
  after(() => llama.model.dispose());
  const pick = (input: LoraConfigInput) => {
    const c = resolveLoraConfig(input);
    return findTargets(llama.model, c, targetSpec(c, llama.config, llama.model));
  };

  const CASES: [string, LoraConfigInput, string[]][] = [
    [
      "the default: q_proj and v_proj",
      {},
      [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.1.self_attn.q_proj",
        "model.layers.1.self_attn.v_proj",
      ],
    ],
    [
      "a regex string matches the full name",
      { targets: ".*\\.1\\.mlp\\.(gate|up)_proj" },
      ["model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj"],
    ],
    [
      "layersToTransform restricts a suffix list to layers",
      { targets: ["o_proj"], layersToTransform: [1] },
      ["model.layers.1.self_attn.o_proj"],
    ],
    [
      "excludeModules removes modules by full name",
      { targets: ["q_proj", "k_proj"], excludeModules: ["model.layers.0.self_attn.k_proj"] },
      ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj"],
    ],
  ];
  for (const [what, input, expected] of CASES) {
    test(what, () => {
      assert.deepEqual(pick(input), expected);
    });
  }

  test("all-linear: every linear layer but the output head", () => {
    const picked = pick({ targets: "all-linear" });
    assert.equal(picked.length, 14, "7 linears × 2 layers, lm_head excluded");
    assert.ok(!picked.includes("lm_head"));
  });

  test("targets that match nothing are an error listing the model's linear layers", () => {
    assert.throws(() => pick({ targets: ["nope_proj"] }), /lora config: targetModules: \["nope_proj"\] match no layer.*q_proj/);
  });

  test("rankPattern and alphaPattern apply by module-name suffix", (t) => {
    const { model } = llama;
    const peft = PeftModel.create(model, {
      r: 4,
      targets: ["q_proj", "v_proj"],
      rankPattern: { "layers\\.1\\.self_attn\\.q_proj": 2 },
      alphaPattern: { v_proj: 16 },
    });
    t.after(() => peft.deleteAdapter("default"));
    const params = new Map(peft.base.namedParameters());
    assert.deepEqual(params.get("model.layers.1.self_attn.q_proj.lora_A.default.weight")!.shape, [2, 32]);
    assert.deepEqual(params.get("model.layers.0.self_attn.q_proj.lora_A.default.weight")!.shape, [4, 32]);
    assert.equal(peft.loraLayer("model.layers.0.self_attn.v_proj").settings.get("default")!.scaling, 16 / 4);
  });
});

describe("LoRA forward, merge, adapters", () => {
  test("fresh adapters (B = 0) leave the model unchanged; random B changes it; disabling restores the base", async (t) => {
    const { model } = await tiny(t, "qwen2");
    const base = lossOf(model);
    const peft = PeftModel.create(model, { r: 4, targets: "all-linear" });
    assert.ok(Math.abs(lossOf(peft) - base) < 1e-6);
    peft.addAdapter("random", { r: 4, targets: ["q_proj", "down_proj"], initLoraWeights: false });
    peft.setAdapter("random");
    const changed = lossOf(peft);
    assert.ok(Math.abs(changed - base) > 1e-3, `loss should move: ${changed} vs ${base}`);
    assert.ok(Math.abs(peft.withAdaptersDisabled(() => lossOf(peft)) - base) < 1e-6);
    assert.ok(Math.abs(lossOf(peft) - changed) < 1e-9, "adapters come back after the scope");
  });

  const MERGE_CASES: [TinyKind, string[]][] = [
    ["llama", ["q_proj", "v_proj", "down_proj"]],
    ["gpt2", ["c_attn", "c_fc"]],
  ];
  for (const [kind, targets] of MERGE_CASES) {
    for (const useDora of [false, true]) {
      test(`merged eval = unmerged eval; unmerge restores the base weights (${kind}, ${useDora ? "DoRA" : "LoRA"})`, async (t) => {
        const { model } = await tiny(t, kind);
        const before = new Map([...model.namedParameters()].map(([n, p]) => [n, p.dataSync().slice()]));
        const baseLoss = lossOf(model);
        const peft = PeftModel.create(model, { r: 4, alpha: 8, targets, initLoraWeights: false, useDora });
        // A DoRA magnitude different from ‖W + sBA‖ makes the rescaling matter.
        for (const [name, p] of peft.trainableParameters()) if (name.includes("magnitude")) tf.tidy(() => p.assign(p.mul(1.3)));
        const unmerged = lossOf(peft);
        peft.merge();
        assert.ok(Math.abs(lossOf(peft) - unmerged) < 1e-4, `merged ${lossOf(peft)} vs ${unmerged}`);
        const disabled = peft.withAdaptersDisabled(() => lossOf(peft));
        assert.ok(Math.abs(disabled - baseLoss) < 1e-4, `disabling a merged adapter gives the base model: ${disabled} vs ${baseLoss}`);
        peft.unmerge();
        for (const [n, p] of [...peft.base.namedParameters()].filter(([n]) => n.includes("base_layer"))) {
          const original = before.get(n.replace(".base_layer", ""))!;
          const diff = Math.max(...Array.from(p.dataSync(), (v, i) => Math.abs(v - original[i]!)));
          assert.ok(diff < 1e-5, `${n} not restored (${diff})`);
        }
        assert.ok(Math.abs(lossOf(peft) - unmerged) < 1e-5);
      });
    }
  }

  test("a new DoRA adapter computes what plain LoRA with the same A and B computes (magnitude = ‖W + sBA‖)", async (t) => {
    const { model } = await tiny(t, "llama");
    const config: LoraConfigInput = { r: 4, alpha: 8, targets: ["q_proj", "down_proj"], initLoraWeights: false };
    const peft = PeftModel.create(model, config, { adapterName: "lora", seed: 5 });
    peft.addAdapter("dora", { ...config, useDora: true }, { seed: 5 });
    const plain = lossOf(peft);
    peft.setAdapter("dora");
    assert.ok(Math.abs(lossOf(peft) - plain) < 1e-5, `${lossOf(peft)} vs ${plain}`);
    const layer = peft.loraLayer("model.layers.0.self_attn.q_proj");
    const { a, b, magnitude } = layer.weightsOf("dora");
    const expected = tf.tidy(() => tf.norm(layer.base.weight.add(tf.matMul(b, a).mul(2)), "euclidean", 1).arraySync() as number[]);
    (magnitude!.arraySync() as number[]).forEach((m, i) =>
      assert.ok(Math.abs(m - expected[i]!) < 1e-5, `row ${i}: ${m} vs ${expected[i]}`),
    );
  });

  test("merge-and-unload gives a plain model with PEFT's merged weights, saved and reloaded as an HF checkpoint", async (t) => {
    const { model, dir } = await tiny(t, "mistral");
    const peft = PeftModel.create(model, { r: 2, targets: ["k_proj", "o_proj"], initLoraWeights: false });
    const adapted = lossOf(peft);
    const plain = peft.mergeAndUnload();
    assert.ok(![...plain.namedModules()].some(([n]) => n.includes("lora") || n.includes("base_layer")));
    const out = path.join(work, "merged");
    await saveModelDirectory(plain, dir, out);
    const reloaded = await loadModel(out);
    t.after(() => reloaded.model.dispose());
    assert.ok(Math.abs(lossOf(reloaded.model) - adapted) < 1e-4);
  });

  test("several adapters: set active, combine (cat is exact), delete", async (t) => {
    const { model } = await tiny(t, "llama");
    const peft = PeftModel.create(model, { r: 2, targets: ["q_proj", "v_proj"], initLoraWeights: false }, { adapterName: "a" });
    peft.addAdapter("b", { r: 3, targets: ["q_proj", "v_proj"], initLoraWeights: false }, { seed: 1 });
    const data = tinyData(4);
    const lossA = lossOf(peft, data);
    peft.setAdapter("b");
    const lossB = lossOf(peft, data);
    peft.setAdapter(["a", "b"]);
    const both = lossOf(peft, data);
    assert.notEqual(lossA, lossB);
    peft.addWeightedAdapter(["a", "b"], [1, 1], "ab", "cat");
    peft.setAdapter("ab");
    assert.ok(Math.abs(lossOf(peft, data) - both) < 1e-4, "cat with weights 1,1 equals both adapters active");
    peft.deleteAdapter("b");
    assert.deepEqual([...peft.adapters.keys()], ["a", "ab"]);
    assert.ok(![...peft.base.namedParameters()].some(([n]) => n.includes(".b.")));
    assert.throws(() => peft.setAdapter("b"), /no adapter "b"/);
  });

  test('"linear" combination: PEFT\'s √w mix of A and B; one adapter with weight 1 is itself; ranks must agree', async (t) => {
    const { model } = await tiny(t, "llama");
    const peft = PeftModel.create(model, { r: 2, alpha: 4, targets: ["q_proj", "v_proj"], initLoraWeights: false }, { adapterName: "a" });
    peft.addAdapter("b", { r: 3, targets: ["q_proj"], initLoraWeights: false });
    const data = tinyData(4);
    const lossA = lossOf(peft, data);
    peft.addWeightedAdapter(["a"], [1], "a1", "linear");
    peft.setAdapter("a1");
    assert.ok(Math.abs(lossOf(peft, data) - lossA) < 1e-5);
    peft.addWeightedAdapter(["a"], [0.25], "quarter", "linear");
    const layer = peft.loraLayer("model.layers.0.self_attn.q_proj");
    const delta = (n: string) =>
      tf.tidy(() => {
        const { a, b } = layer.weightsOf(n);
        return tf.matMul(b, a).mul(layer.settings.get(n)!.scaling).dataSync().slice();
      });
    const [full, quarter] = [delta("a"), delta("quarter")];
    full.forEach((v, i) => assert.ok(Math.abs(quarter[i]! - 0.25 * v) < 1e-6, `${quarter[i]} vs ${0.25 * v}`));
    assert.throws(() => peft.addWeightedAdapter(["a", "b"], [1, 1], "ab", "linear"), /needs adapters of one rank; found ranks 2, 3/);
  });

  test("trainable-parameter report in PEFT's words", async (t) => {
    const { model } = await tiny(t, "llama");
    const all = [...model.namedParameters()].reduce((s, [, p]) => s + p.size, 0);
    const peft = PeftModel.create(model, { r: 4, targets: ["q_proj", "v_proj"] });
    const lora = 2 * (4 * 32 + 32 * 4) + 2 * (4 * 32 + 32 * 4); // q: A 4×32, B 32×4; v: A 4×32, B 32×4 (4 kv heads × 8); 2 layers
    const s = peft.trainableSummary();
    assert.equal(s.trainable, lora);
    assert.equal(s.all, all + lora);
    assert.equal(
      s.text,
      `trainable params: ${lora.toLocaleString("en-US")} || all params: ${(all + lora).toLocaleString("en-US")} || trainable%: ${((100 * lora) / (all + lora)).toFixed(4)}`,
    );
  });
});

describe("modules_to_save", () => {
  test("each adapter trains its own copy; disabling or switching shows the base's; it saves and loads with the adapter", async (t) => {
    const { model, dir } = await tiny(t, "qwen2");
    const data = tinyData(5);
    const base = lossOf(model, data);
    const peft = PeftModel.create(model, { r: 2, targets: ["q_proj"], modulesToSave: ["lm_head"] }, { adapterName: "a" });
    peft.addAdapter("b", { r: 2, targets: ["v_proj"] });
    peft.setAdapter("a");
    const trainable = peft.trainableParameters().map(([n]) => n);
    assert.ok(trainable.includes("lm_head.weight"), trainable.join(", "));
    // Train the adapter's copy of lm_head (a stand-in for an optimizer step).
    const [, head] = peft.trainableParameters().find(([n]) => n === "lm_head.weight")!;
    tf.tidy(() => head.assign(head.mul(1.5)));
    const adapted = lossOf(peft, data);
    assert.ok(Math.abs(adapted - base) > 1e-3);
    assert.ok(Math.abs(peft.withAdaptersDisabled(() => lossOf(peft, data)) - base) < 1e-6, "disabled: the base lm_head");
    peft.setAdapter("b");
    assert.ok(Math.abs(lossOf(peft, data) - base) < 1e-6, "adapter b has no copy: the base lm_head");
    assert.ok(!peft.trainableParameters().some(([n]) => n === "lm_head.weight"));
    peft.setAdapter("a");
    assert.ok(Math.abs(lossOf(peft, data) - adapted) < 1e-9, "a's trained copy comes back");
    const saved = path.join(work, "mts-a");
    peft.setAdapter("b");
    await saveAdapter(peft, saved, "a"); // saving an inactive adapter still writes its copy
    const keys = [...(await readSafetensors(path.join(saved, "adapter_model.safetensors"))).keys()];
    assert.ok(keys.includes("base_model.model.lm_head.weight"), keys.join(", "));
    const fresh = await loadModel(dir);
    t.after(() => fresh.model.dispose());
    assert.ok(Math.abs(lossOf(await loadAdapter(fresh.model, saved), data) - adapted) < 1e-6);
    peft.deleteAdapter("a");
    assert.ok(Math.abs(lossOf(peft, data) - base) < 1e-6, "deleting a restores the base lm_head");
  });

  test("activating the adapter that is already active keeps its copy in place", async (t) => {
    const { model } = await tiny(t, "qwen2");
    const data = tinyData(5);
    const peft = PeftModel.create(model, { r: 2, targets: ["q_proj"], modulesToSave: ["lm_head"] });
    const [, head] = peft.trainableParameters().find(([n]) => n === "lm_head.weight")!;
    tf.tidy(() => head.assign(head.mul(1.5)));
    const adapted = lossOf(peft, data);
    peft.setAdapter("default");
    peft.setAdapter("default");
    assert.equal(lossOf(peft, data), adapted);
    assert.ok(peft.trainableParameters().some(([n]) => n === "lm_head.weight"));
  });

  const BAD: [string, LoraConfigInput, RegExp][] = [
    [
      "an entry naming no module",
      { modulesToSave: ["nope"] },
      /^lora config: modulesToSave: expected names of modules of the model.*got "nope"$/,
    ],
    [
      "a module LoRA wraps",
      { targets: ["q_proj"], modulesToSave: ["q_proj"] },
      /^lora config: modulesToSave: expected modules apart from the LoRA-wrapped layers, got "q_proj"$/,
    ],
  ];
  for (const [what, config, message] of BAD) {
    test(`${what} is an error, and the model stays unwrapped`, async (t) => {
      const { model } = await tiny(t, "qwen2");
      const peft = PeftModel.emptyOn(model);
      assert.throws(() => peft.addAdapter("x", config), { name: "UserError", message });
      assert.equal(peft.adapters.size, 0);
      assert.ok(![...model.namedModules()].some(([n]) => n.includes("base_layer")));
    });
  }
});

describe("PEFT files", () => {
  test("save writes PEFT's keys and config; load reproduces the loss; the adapter loads frozen unless asked", async (t) => {
    const m = await loadModel(STORIES);
    const peft = PeftModel.create(m.model, { r: 4, alpha: 16, targets: ["q_proj", "v_proj"], initLoraWeights: false, useRslora: true });
    t.after(() => peft.dispose());
    const data = [{ inputIds: m.tokenizer!.encode("Once upon a time, a dog found a ball.") }];
    const loss = lossOf(peft, data);
    const dir = path.join(work, "stories-adapter");
    await saveAdapter(peft, dir);
    const config = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8"));
    assert.equal(config.peft_type, "LORA");
    assert.equal(config.task_type, "CAUSAL_LM");
    assert.equal(config.r, 4);
    assert.equal(config.lora_alpha, 16);
    assert.equal(config.use_rslora, true);
    assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);
    const m2 = await loadModel(STORIES);
    const reloaded = await loadAdapter(m2.model, dir);
    t.after(() => reloaded.dispose());
    assert.ok(Math.abs(lossOf(reloaded, data) - loss) < 1e-6);
    assert.equal(reloaded.trainableParameters().length, 0);
    const m3 = await loadModel(STORIES);
    t.after(() => m3.model.dispose());
    assert.ok((await loadAdapter(m3.model, dir, { trainable: true })).trainableParameters().length > 0);
  });
});

describe("gradients", () => {
  test("LoRA gradients match central finite differences", async (t) => {
    const { model } = await tiny(t, "qwen2");
    const peft = PeftModel.create(model, { r: 2, alpha: 4, targets: ["q_proj", "up_proj"], initLoraWeights: false });
    const batch = collate(tinyData(3, 11));
    t.after(() => disposeBatch(batch));
    const loss = () =>
      tf.tidy(() => {
        const { nll, mask } = tokenNll(peft.forward(batch.inputIds, { attentionMask: batch.attentionMask }), batch.labels);
        return nll.sum().div(mask.sum()) as tf.Scalar;
      });
    const params = peft.trainableParameters();
    const { grads } = tf.variableGrads(
      loss,
      params.map(([, p]) => p),
    );
    t.after(() => tf.dispose(Object.values(grads)));
    const eps = 1e-2;
    for (const [name, p] of params.slice(0, 4)) {
      const g = grads[p.name]!.dataSync();
      for (const i of [0, Math.floor(p.size / 2), p.size - 1]) {
        const original = p.dataSync().slice();
        const at = (delta: number) => {
          const v = original.slice();
          v[i]! += delta;
          tf.tidy(() => p.assign(tf.tensor(v, p.shape)));
          const l = loss();
          const value = l.dataSync()[0]!;
          l.dispose();
          return value;
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        tf.tidy(() => p.assign(tf.tensor(original, p.shape)));
        assert.ok(Math.abs(numeric - g[i]!) < 2e-3 + 2e-2 * Math.abs(numeric), `${name}[${i}]: analytic ${g[i]} vs numeric ${numeric}`);
      }
    }
  });
});
