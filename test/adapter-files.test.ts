/**
 * Adapter files hold exactly what PEFT's format allows for their config: lora_A/lora_B of the target
 * modules, lora_magnitude_vector iff use_dora, copies of the modules_to_save, biases per `bias`. Anything
 * else (a base weight, a missing magnitude, a field of the wrong JSON type, …) is a user error naming the
 * file and the key, through the real CLI (`loralab eval --adapter`) and through the DSL (`base.loadAdapter`),
 * and a failed load leaves the model as it was. Build first: the CLI runs from dist/.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { UserError } from "../src/core/errors.js";
import { readSafetensors, writeSafetensors, type TensorToWrite } from "../src/checkpoint/safetensors.js";
import { loadModel } from "../src/models/load.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, saveAdapter } from "../src/lora/adapter-io.js";
import type { LoraConfigInput } from "../src/lora/config.js";
import { model, type Model } from "../dsl/index.js";
import { tempDir } from "./helpers/paths.js";
import { expectCliError, runCli } from "./helpers/cli.js";
import { writeTinyCheckpoint } from "./helpers/tiny-models.js";
import { tinyData } from "./helpers/tiny-train.js";

const work = tempDir("adapter-files");
after(() => fs.rmSync(work, { recursive: true, force: true }));

const P = "base_model.model.";
const Q = `${P}model.layers.0.self_attn.q_proj`;
const examples = tinyData(6);
const dataFile = path.join(work, "data.jsonl");
fs.writeFileSync(dataFile, examples.map((e) => JSON.stringify({ input_ids: e.inputIds })).join("\n"));

/** qwen2: biases on q/k/v and an untied lm_head, so every kind of adapter tensor exists. */
let tinyDir: string;
let base: Model;

before(async () => {
  await initBackend();
  tinyDir = await writeTinyCheckpoint(path.join(work, "qwen2"), "qwen2", 7);
  base = await model(tinyDir);
});

/**
 * Saves an adapter with `config` on a fresh copy of the tiny model, every trainable weight moved away from
 * its initial value (so biases and module copies differ from the base's); returns its directory and loss.
 */
async function savedAdapter(name: string, config: LoraConfigInput): Promise<{ dir: string; loss: number }> {
  const { model: m } = await loadModel(tinyDir);
  const peft = PeftModel.create(m, { r: 2, targets: ["q_proj", "v_proj"], initLoraWeights: false, ...config }, { seed: 3 });
  for (const [, p] of peft.trainableParameters()) tf.tidy(() => p.assign(p.add(0.05)));
  const dir = path.join(work, name);
  await saveAdapter(peft, dir);
  const loss = perplexity(peft, examples).loss;
  peft.dispose();
  return { dir, loss };
}

type Tensors = Map<string, TensorToWrite>;

interface BadAdapter {
  what: string;
  config?: (c: Record<string, unknown>) => void;
  tensors?: (t: Tensors) => void;
  /** Which file the message names. */
  file: typeof ADAPTER_CONFIG | typeof ADAPTER_WEIGHTS;
  /** What the message names (the key). */
  key: string;
}

const zeros = (...shape: number[]): TensorToWrite => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

const CASES: BadAdapter[] = [
  {
    what: "a base weight (the final norm) in the weights",
    tensors: (t) => t.set(`${P}model.norm.weight`, zeros(32)),
    file: ADAPTER_WEIGHTS,
    key: `${P}model.norm.weight`,
  },
  { what: "use_dora without magnitude vectors", config: (c) => (c.use_dora = true), file: ADAPTER_WEIGHTS, key: "lora_magnitude_vector" },
  {
    what: "a magnitude vector while use_dora is false",
    tensors: (t) => t.set(`${Q}.lora_magnitude_vector`, zeros(32)),
    file: ADAPTER_WEIGHTS,
    key: `${Q}.lora_magnitude_vector`,
  },
  { what: "modules_to_save naming no module", config: (c) => (c.modules_to_save = ["nope"]), file: ADAPTER_CONFIG, key: "modules_to_save" },
  {
    what: "a copy of a module modules_to_save does not list",
    tensors: (t) => t.set(`${P}lm_head.weight`, zeros(96, 32)),
    file: ADAPTER_WEIGHTS,
    key: `${P}lm_head.weight`,
  },
  {
    what: 'a bias while bias is "none"',
    tensors: (t) => t.set(`${Q}.base_layer.bias`, zeros(32)),
    file: ADAPTER_WEIGHTS,
    key: `${Q}.base_layer.bias`,
  },
  {
    what: 'a bias of a layer LoRA does not wrap while bias is "lora_only"',
    config: (c) => (c.bias = "lora_only"),
    tensors: (t) => t.set(`${P}model.layers.0.self_attn.k_proj.bias`, zeros(16)),
    file: ADAPTER_WEIGHTS,
    key: `${P}model.layers.0.self_attn.k_proj.bias`,
  },
  {
    what: "LoRA weights of a module target_modules does not select",
    tensors: (t) => t.set(`${P}model.layers.0.self_attn.k_proj.lora_A.weight`, zeros(2, 32)),
    file: ADAPTER_WEIGHTS,
    key: `${P}model.layers.0.self_attn.k_proj.lora_A.weight`,
  },
  {
    what: "a tensor that names nothing in the model",
    tensors: (t) => t.set(`${P}model.layers.7.mlp.up_proj.lora_B.weight`, zeros(48, 2)),
    file: ADAPTER_WEIGHTS,
    key: `${P}model.layers.7.mlp.up_proj.lora_B.weight`,
  },
  { what: "a missing lora_B", tensors: (t) => t.delete(`${Q}.lora_B.weight`), file: ADAPTER_WEIGHTS, key: `${Q}.lora_B.weight` },
  {
    what: "a lora_A of the wrong shape",
    tensors: (t) => t.set(`${Q}.lora_A.weight`, zeros(3, 32)),
    file: ADAPTER_WEIGHTS,
    key: `${Q}.lora_A.weight`,
  },
  { what: 'init_lora_weights: "pissa"', config: (c) => (c.init_lora_weights = "pissa"), file: ADAPTER_CONFIG, key: "init_lora_weights" },
  { what: 'use_rslora: "false"', config: (c) => (c.use_rslora = "false"), file: ADAPTER_CONFIG, key: "use_rslora" },
  { what: 'r: "8"', config: (c) => (c.r = "8"), file: ADAPTER_CONFIG, key: "r" },
  { what: 'target_modules: "(["', config: (c) => (c.target_modules = "(["), file: ADAPTER_CONFIG, key: "target_modules" },
  { what: "layer_replication set", config: (c) => (c.layer_replication = [[0, 2]]), file: ADAPTER_CONFIG, key: "layer_replication" },
];

let good: Promise<{ dir: string; loss: number }> | undefined;
const variants = new Map<BadAdapter, Promise<string>>();

/** The case's adapter directory: the good adapter with its config and tensors edited (made once, used by both faces). */
function badAdapter(c: BadAdapter): Promise<string> {
  if (!variants.has(c)) {
    variants.set(
      c,
      (async () => {
        good ??= savedAdapter("good", {});
        const from = (await good).dir;
        const dir = path.join(work, `bad-${CASES.indexOf(c)}`);
        fs.cpSync(from, dir, { recursive: true });
        const configFile = path.join(dir, ADAPTER_CONFIG);
        const config = JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>;
        c.config?.(config);
        fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
        const weightsFile = path.join(dir, ADAPTER_WEIGHTS);
        const tensors: Tensors = new Map([...(await readSafetensors(weightsFile))].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
        c.tensors?.(tensors);
        await writeSafetensors(weightsFile, tensors);
        return dir;
      })(),
    );
  }
  return variants.get(c)!;
}

describe("adapter files PEFT's format does not allow: loralab eval --adapter", () => {
  for (const c of CASES) {
    test(c.what, async () => {
      const dir = await badAdapter(c);
      expectCliError(["eval", "--model", tinyDir, "--adapter", dir, "--data", dataFile], [path.join(dir, c.file), c.key]);
    });
  }
});

describe("adapter files PEFT's format does not allow: base.loadAdapter", () => {
  for (const c of CASES) {
    test(c.what, async () => {
      const dir = await badAdapter(c);
      const before = (await base.eval(examples)).loss;
      await assert.rejects(base.loadAdapter(dir), (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        assert.ok(e.message.includes(path.join(dir, c.file)), `should name the file: ${e.message}`);
        assert.ok(e.message.includes(c.key), `should name ${c.key}: ${e.message}`);
        return true;
      });
      assert.deepEqual([...base.peftModel().adapters.keys()], [], "the failed adapter is gone");
      assert.equal((await base.eval(examples)).loss, before, "the model is as it was");
    });
  }
});

/** Adapters with every kind of tensor PEFT's format allows load, and compute what they computed when saved. */
const ALLOWED: [string, LoraConfigInput][] = [
  ['bias "all"', { bias: "all" }],
  ['bias "lora_only"', { bias: "lora_only" }],
  ["modules_to_save", { modulesToSave: ["lm_head"] }],
  ["DoRA magnitudes", { useDora: true }],
  ["all of them", { bias: "all", modulesToSave: ["lm_head"], useDora: true }],
];

describe("adapter files PEFT's format allows", () => {
  for (const [what, config] of ALLOWED) {
    const saved = () => savedAdapter(`allowed-${ALLOWED.findIndex(([w]) => w === what)}`, config);
    let adapter: Promise<{ dir: string; loss: number }> | undefined;

    test(`${what}: loralab eval --adapter gives the saved adapter's loss`, async () => {
      const { dir, loss } = await (adapter ??= saved());
      const run = runCli(["eval", "--model", tinyDir, "--adapter", dir, "--data", dataFile, "--json"]);
      assert.equal(run.status, 0, run.stderr);
      const reported = (JSON.parse(run.stdout) as { loss: number }).loss;
      assert.ok(Math.abs(reported - loss) < 1e-5, `${reported} vs ${loss}`);
    });

    test(`${what}: base.loadAdapter gives the saved adapter's loss`, async (t) => {
      const { dir, loss } = await (adapter ??= saved());
      const fresh = await model(tinyDir);
      t.after(() => fresh.loaded.model.dispose());
      const loaded = await fresh.loadAdapter(dir);
      const got = (await loaded.eval(examples)).loss!;
      assert.ok(Math.abs(got - loss) < 1e-5, `${got} vs ${loss}`);
    });
  }

  test("an adapter without its modules_to_save copy loads with the base model's module (as PEFT does)", async (t) => {
    const { dir } = await savedAdapter("mts-absent", { modulesToSave: ["lm_head"] });
    const file = path.join(dir, ADAPTER_WEIGHTS);
    const tensors = await readSafetensors(file);
    assert.ok(tensors.delete(`${P}lm_head.weight`));
    await writeSafetensors(file, new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }])));
    const fresh = await model(tinyDir);
    t.after(() => fresh.loaded.model.dispose());
    const head = () =>
      [...fresh.loaded.model.namedParameters()]
        .find(([n]) => n === "lm_head.weight")![1]
        .dataSync()
        .slice();
    const before = head();
    await fresh.loadAdapter(dir);
    assert.deepEqual(head(), before);
  });
});
