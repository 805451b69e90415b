/**
 * LoraConfig's field table and what derives from it: defaults, validation messages, adapter_config.json in
 * both directions, the DSL's short names and `loralab train --lora key=value` (through the real CLI; build first).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  fromAdapterConfigJson,
  LORA_DEFAULTS,
  LORA_FIELDS,
  type LoraConfig,
  type LoraConfigInput,
  parseLoraSpec,
  resolveLoraConfig,
  toAdapterConfigJson,
} from "../src/lora/config.js";
import { tempDir } from "./helpers/paths.js";
import { expectCliError, runCli } from "./helpers/cli.js";
import { writeTinyCheckpoint } from "./helpers/tiny-models.js";

const work = tempDir("lora-config");
after(() => fs.rmSync(work, { recursive: true, force: true }));

/** Every field away from its default. */
const EVERY_FIELD: LoraConfig = {
  r: 4,
  loraAlpha: 16,
  targetModules: ["q_proj", "up_proj"],
  excludeModules: "model\\.layers\\.0\\..*",
  loraDropout: 0.1,
  bias: "lora_only",
  modulesToSave: ["lm_head"],
  useRslora: true,
  initLoraWeights: "gaussian",
  layersToTransform: [1],
  layersPattern: ["layers"],
  rankPattern: { q_proj: 2 },
  alphaPattern: { up_proj: 4 },
  useDora: true,
  fanInFanOut: true,
  baseModelNameOrPath: "some/model",
};

describe("the field table", () => {
  test("defaults are PEFT's LoraConfig defaults", () => {
    assert.deepEqual(LORA_DEFAULTS, {
      r: 8,
      loraAlpha: 8,
      targetModules: null,
      excludeModules: null,
      loraDropout: 0,
      bias: "none",
      modulesToSave: null,
      useRslora: false,
      initLoraWeights: true,
      layersToTransform: null,
      layersPattern: null,
      rankPattern: {},
      alphaPattern: {},
      useDora: false,
      fanInFanOut: false,
      baseModelNameOrPath: null,
    });
    assert.deepEqual(resolveLoraConfig(), LORA_DEFAULTS);
  });

  test("a config with every field set survives adapter_config.json, under PEFT's keys", () => {
    for (const name of Object.keys(LORA_FIELDS) as (keyof LoraConfig)[])
      assert.notDeepEqual(EVERY_FIELD[name], LORA_DEFAULTS[name], `${name} is set away from its default`);
    const json = toAdapterConfigJson(EVERY_FIELD, EVERY_FIELD.targetModules!);
    for (const [name, f] of Object.entries(LORA_FIELDS)) assert.deepEqual(json[f.json], EVERY_FIELD[name as keyof LoraConfig], f.json);
    assert.deepEqual(fromAdapterConfigJson(JSON.parse(JSON.stringify(json)), "adapter_config.json"), EVERY_FIELD);
  });

  test("adapter_config.json has the keys PEFT writes, sorted as PEFT sorts them", () => {
    const keys = Object.keys(toAdapterConfigJson(resolveLoraConfig(), ["q_proj", "v_proj"]));
    assert.deepEqual(keys, [
      "alpha_pattern",
      "auto_mapping",
      "base_model_name_or_path",
      "bias",
      "exclude_modules",
      "fan_in_fan_out",
      "inference_mode",
      "init_lora_weights",
      "layer_replication",
      "layers_pattern",
      "layers_to_transform",
      "loftq_config",
      "lora_alpha",
      "lora_bias",
      "lora_dropout",
      "megatron_config",
      "megatron_core",
      "modules_to_save",
      "peft_type",
      "r",
      "rank_pattern",
      "revision",
      "target_modules",
      "task_type",
      "use_dora",
      "use_rslora",
    ]);
  });

  test("a PEFT-written config (keys loralab has no field for included) reads", () => {
    const config = fromAdapterConfigJson(
      { peft_type: "LORA", task_type: "CAUSAL_LM", r: 16, lora_alpha: 32, target_modules: ["q_proj"], use_qalora: false, eva_config: null },
      "adapter_config.json",
    );
    assert.deepEqual([config.r, config.loraAlpha, config.targetModules], [16, 32, ["q_proj"]]);
  });

  test("the DSL's short names mean the long ones", () => {
    assert.deepEqual(
      resolveLoraConfig({ alpha: 16, targets: ["q_proj"], dropout: 0.1, dora: true, rslora: true }),
      resolveLoraConfig({ loraAlpha: 16, targetModules: ["q_proj"], loraDropout: 0.1, useDora: true, useRslora: true }),
    );
  });

  test("shorthands: one layer index, one layers pattern, a bare rank", () => {
    const c = resolveLoraConfig({ layersToTransform: 1, layersPattern: "layers" });
    assert.deepEqual([c.layersToTransform, c.layersPattern], [[1], ["layers"]]);
    assert.equal(resolveLoraConfig(4).r, 4);
    assert.deepEqual(fromAdapterConfigJson({ layers_to_transform: 0 }, "adapter_config.json").layersToTransform, [0]);
  });

  test("resolved configs do not share their pattern objects", () => {
    const a = resolveLoraConfig();
    a.rankPattern.q_proj = 2;
    assert.deepEqual(resolveLoraConfig().rankPattern, {});
    assert.deepEqual(LORA_DEFAULTS.rankPattern, {});
  });
});

const INVALID: [string, LoraConfigInput, string][] = [
  ["r", { r: 0 }, "lora config: r: expected a positive integer, got 0"],
  ["alpha", { alpha: -1 }, "lora config: alpha: expected a positive number, got -1"],
  ["dropout", { dropout: 1 }, "lora config: dropout: expected a number in [0, 1), got 1"],
  ["bias", { bias: "some" as "all" }, 'lora config: bias: expected one of "none", "all" or "lora_only", got "some"'],
  [
    "an invalid target regex",
    { targets: "([" },
    'lora config: targets: expected a list of module names, a regex or "all-linear", got "(["',
  ],
  [
    "an invalid rankPattern regex",
    { rankPattern: { "q(": 2 } },
    'lora config: rankPattern: expected an object of module-name regex → positive integer, got {"q(":2}',
  ],
  [
    "initLoraWeights",
    { initLoraWeights: "pissa" as "gaussian" },
    'lora config: initLoraWeights: expected true, false or "gaussian", got "pissa"',
  ],
  ["a long and a short name together", { alpha: 8, loraAlpha: 8 }, "lora config: alpha and loraAlpha are one option; give one of them"],
  [
    "layersToTransform with a regex target",
    { layersToTransform: [0], targets: "q_proj" },
    "lora config: layersToTransform cannot be combined with a regex targets (as in PEFT): put the layer restriction into the regex",
  ],
];
describe("invalid options: one message shape", () => {
  for (const [what, input, message] of INVALID) {
    test(what, () => {
      assert.throws(() => resolveLoraConfig(input), { name: "UserError", message });
    });
  }
  test("an unknown option lists the known ones", () => {
    assert.throws(() => resolveLoraConfig({ rank: 8 } as LoraConfigInput), {
      name: "UserError",
      message: /^lora config: unknown option "rank"; known: r, loraAlpha \(alpha\), targetModules \(targets\),/,
    });
  });
});

const SPECS: [string, LoraConfigInput][] = [
  ["r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05", { r: 8, alpha: 16, targets: ["q_proj", "v_proj"], dropout: 0.05 }],
  ["targets=all-linear,bias=all,dora=true,rslora=false", { targets: "all-linear", bias: "all", dora: true, rslora: false }],
  [
    "modulesToSave=lm_head,layersToTransform=0+1,initLoraWeights=gaussian,excludeModules=k_proj",
    { modulesToSave: ["lm_head"], layersToTransform: [0, 1], initLoraWeights: "gaussian", excludeModules: ["k_proj"] },
  ],
  ["initLoraWeights=false", { initLoraWeights: false }],
];
describe("--lora key=value", () => {
  for (const [spec, expected] of SPECS) {
    test(spec, () => {
      assert.deepEqual(parseLoraSpec(spec), expected);
    });
  }
});

const BAD_SPECS: [string, string][] = [
  ["r=abc", '--lora: r: expected a positive integer, got "abc"'],
  ["dora=yes", '--lora: dora: expected true or false, got "yes"'],
  ["dropout=2", "--lora: dropout: expected a number in [0, 1), got 2"],
  ["rank=8", '--lora: unknown key "rank"; known: r, alpha, targets, excludeModules, dropout, bias, modulesToSave, rslora,'],
  ["rankPattern=2", '--lora: unknown key "rankPattern"'],
  ["r", '--lora: "r" is not key=value'],
];
describe("loralab train --lora: user errors through the CLI", () => {
  let model: string;
  let data: string;
  const ready = (async () => {
    model = await writeTinyCheckpoint(path.join(work, "llama"), "llama");
    data = path.join(work, "d.jsonl");
    fs.writeFileSync(data, '{"input_ids": [1, 2, 3, 4]}\n');
  })();
  for (const [spec, message] of BAD_SPECS) {
    test(spec, async () => {
      await ready;
      expectCliError(["train", "--model", model, "--data", data, "--lora", spec], [message]);
    });
  }

  test("every key the command line takes reaches adapter_config.json", async () => {
    await ready;
    const out = path.join(work, "adapter");
    const spec =
      "r=2,alpha=4,targets=q_proj+v_proj,dropout=0.1,dora=true,rslora=true,bias=all,initLoraWeights=gaussian,layersToTransform=1";
    const run = runCli(["train", "--model", model, "--data", data, "--lora", spec, "--steps", "1", "--batch", "1", "--out", out, "--json"]);
    assert.equal(run.status, 0, run.stderr);
    const json = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(
      [json.r, json.lora_alpha, json.target_modules, json.lora_dropout, json.use_dora, json.use_rslora, json.bias],
      [2, 4, ["q_proj", "v_proj"], 0.1, true, true, "all"],
    );
    assert.deepEqual([json.init_lora_weights, json.layers_to_transform, json.base_model_name_or_path], ["gaussian", [1], model]);
  });
});
