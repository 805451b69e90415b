/**
 * Training against the PyTorch reference (test/reference/lora_reference.py: PEFT LoRA semantics,
 * torch.optim.AdamW, HF schedules and clipping): the same micro-batches, the same initial adapter,
 * the same losses and gradient norms step by step; adapters cross between the two implementations.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend } from "../src/backend/index.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { saveAdapter } from "../src/lora/adapter-io.js";
import { FullTrainable, LoraTrainable, type Trainable } from "../src/train/trainable.js";
import { Trainer, type TrainingArguments } from "../src/train/trainer.js";
import { collate, disposeBatch, type Example } from "../src/data/batch.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { CLI, REPO, STORIES, tempDir } from "./helpers/paths.js";
import { PYTHON, torchAvailable } from "./helpers/reference.js";
import { tinyData, tinyModel } from "./helpers/tiny-train.js";

const EXAMPLE = path.join(REPO, "test/reference/lora_example");
const work = tempDir("train-reference");
after(() => fs.rmSync(work, { recursive: true, force: true }));
const workDir = (name: string) => fs.mkdtempSync(path.join(work, `${name}-`));
const live = torchAvailable();
const needsTorch = live ? {} : { skip: "Debian's python3-torch is not installed (CI installs it)" };

interface RefStep {
  loss: number;
  lr: number;
  grad_norm: number;
}

function runReference(cases: unknown[]): Record<string, { steps?: RefStep[]; loss?: number; error?: string }> {
  const file = path.join(workDir("train-ref"), "request.json");
  fs.writeFileSync(file, JSON.stringify({ cases }));
  const run = spawnSync(PYTHON, [path.join(REPO, "test/reference/reference.py"), file], { encoding: "utf8", maxBuffer: 1 << 26 });
  assert.equal(run.status, 0, `reference failed: ${run.stderr}\n${run.stdout.slice(0, 1000)}`);
  return JSON.parse(run.stdout).results;
}

function assertSameSteps(ours: { loss: number; lr: number; gradNorm: number }[], ref: RefStep[], label: string): void {
  assert.equal(ours.length, ref.length, `${label}: step count`);
  ours.forEach((s, i) => {
    const r = ref[i]!;
    assert.ok(Math.abs(s.loss - r.loss) <= 1e-4 * Math.abs(r.loss), `${label} step ${i + 1}: loss ${s.loss} vs reference ${r.loss}`);
    assert.ok(Math.abs(s.lr - r.lr) <= 1e-12 + 1e-9 * r.lr, `${label} step ${i + 1}: lr ${s.lr} vs ${r.lr}`);
    assert.ok(
      Math.abs(s.gradNorm - r.grad_norm) <= 1e-3 * r.grad_norm + 1e-6,
      `${label} step ${i + 1}: grad norm ${s.gradNorm} vs ${r.grad_norm}`,
    );
  });
}

/** The reference's description of our trainer's step k: its micro-batches, right-padded with masks. */
function referenceSteps(trainer: Trainer, examples: Example[], steps: number) {
  return Array.from({ length: steps }, (_, k) =>
    (trainer as unknown as { rowsOfStep(k: number): number[][] }).rowsOfStep(k).map((rows) => {
      const batch = collate(rows.map((r) => examples[r]!));
      const out = {
        input_ids: batch.inputIds.arraySync(),
        attention_mask: batch.attentionMask.arraySync(),
        labels: batch.labels.arraySync(),
      };
      disposeBatch(batch);
      return out;
    }),
  );
}

before(async () => {
  await initBackend();
});

describe("training vs the PyTorch reference", () => {
  test("loralab train continues a Python-written PEFT adapter with PyTorch's six losses (a continued adapter matches PyTorch step for step)", () => {
    const request = JSON.parse(fs.readFileSync(path.join(EXAMPLE, "request.json"), "utf8"));
    const trainCase = request.cases.find((c: { name: string }) => c.name === "train");
    const rows = (trainCase.steps as { input_ids: number[][] }[][]).flatMap((step) => step.flatMap((mb) => mb.input_ids));
    const dir = workDir("acceptance");
    const data = path.join(dir, "train.jsonl");
    fs.writeFileSync(data, rows.map((ids) => JSON.stringify({ input_ids: ids })).join("\n"));
    const out = path.join(dir, "adapter-out");
    const run = spawnSync(
      process.execPath,
      [
        CLI,
        "train",
        "--model",
        STORIES,
        "--adapter",
        path.join(EXAMPLE, "adapter"),
        "--data",
        data,
        "--steps",
        "6",
        "--lr",
        "0.01",
        "--batch",
        "4",
        "--seq",
        "32",
        "--no-shuffle",
        "--schedule",
        "constant",
        "--warmup",
        "0",
        "--weight-decay",
        "0",
        "--max-grad-norm",
        "0",
        "--out",
        out,
        "--json",
      ],
      { encoding: "utf8" },
    );
    assert.equal(run.status, 0, run.stderr);
    const ours = JSON.parse(run.stdout) as {
      steps: { loss: number; lr: number; grad_norm: number }[];
      trainable_params: number;
      adapter_dir: string;
    };
    const expected = live
      ? runReference([{ ...trainCase, name: "train", model: STORIES, adapter: path.join(EXAMPLE, "adapter") }]).train!.steps!
      : JSON.parse(fs.readFileSync(path.join(EXAMPLE, "response.json"), "utf8")).results.train.steps;
    assertSameSteps(
      ours.steps.map((s) => ({ loss: s.loss, lr: s.lr, gradNorm: s.grad_norm })),
      expected,
      "acceptance",
    );
    assert.equal(ours.trainable_params, 4480);
    assert.equal(ours.adapter_dir, out);
    assert.ok(fs.existsSync(path.join(out, "adapter_model.safetensors")));
  });

  test("an adapter written by loralab gives PyTorch the loss loralab eval reports", needsTorch, () => {
    const dir = workDir("cross");
    const data = path.join(dir, "d.jsonl");
    const texts = [
      "Once upon a time, a girl found a shiny stone.",
      "The boy and his dog ran to the big tree.",
      "Mom made a cake and they ate it.",
    ];
    fs.writeFileSync(data, texts.map((text) => JSON.stringify({ text })).join("\n"));
    const out = path.join(dir, "a");
    const train = spawnSync(
      process.execPath,
      [
        CLI,
        "train",
        "--model",
        STORIES,
        "--data",
        data,
        "--lora",
        "r=4,alpha=8,targets=q_proj+v_proj+down_proj",
        "--steps",
        "3",
        "--lr",
        "0.01",
        "--batch",
        "3",
        "--out",
        out,
        "--json",
      ],
      { encoding: "utf8" },
    );
    assert.equal(train.status, 0, train.stderr);
    const ev = spawnSync(process.execPath, [CLI, "eval", "--model", STORIES, "--adapter", out, "--data", data, "--json"], {
      encoding: "utf8",
    });
    assert.equal(ev.status, 0, ev.stderr);
    const ours = JSON.parse(ev.stdout) as { loss: number; tokens: number };
    const tokenizer = Tokenizer.fromDirectory(STORIES); // the same tokenization as loralab eval
    const ids = texts.map((t) => tokenizer.encode(t));
    const width = Math.max(...ids.map((r) => r.length));
    const ref = runReference([
      {
        name: "x",
        kind: "lora_loss",
        model: STORIES,
        adapter: out,
        input_ids: ids.map((r) => [...r, ...Array(width - r.length).fill(0)]),
        attention_mask: ids.map((r) => [...r.map(() => 1), ...Array(width - r.length).fill(0)]),
      },
    ]).x!;
    assert.ok(Math.abs(ours.loss - ref.loss!) < 1e-4, `eval ${ours.loss} vs reference ${ref.loss}`);
  });

  test("LoRA with grad accumulation, padding, cosine warmup, weight decay and clipping matches step by step", needsTorch, async (t) => {
    const { model, dir: modelDir } = await tinyModel("qwen2");
    const peft = PeftModel.create(
      model,
      { r: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], initLoraWeights: false },
      { seed: 9 },
    );
    t.after(() => peft.dispose());
    const adapterDir = path.join(workDir("init"), "adapter");
    await saveAdapter(peft, adapterDir);
    const examples = tinyData(12, 21);
    const args: TrainingArguments = {
      lr: 0.02,
      batchSize: 3,
      gradAccum: 2,
      maxSteps: 6,
      schedule: "cosine",
      warmupSteps: 2,
      weightDecay: 0.1,
      maxGradNorm: 0.5,
      shuffle: false,
    };
    const trainer = new Trainer(new LoraTrainable(peft), examples, args);
    const steps = referenceSteps(trainer, examples, 6);
    await trainer.train();
    const ref = runReference([
      {
        name: "t",
        kind: "lora_train",
        model: modelDir,
        adapter: adapterDir,
        steps,
        lr: 0.02,
        weight_decay: 0.1,
        max_grad_norm: 0.5,
        schedule: "cosine",
        warmup_steps: 2,
        total_steps: 6,
      },
    ]).t!;
    assertSameSteps(trainer.history, ref.steps!, "qwen2 lora");
  });

  test('modules_to_save and bias="all" train what PEFT trains, step by step', needsTorch, async (t) => {
    const { model, dir: modelDir } = await tinyModel("qwen2");
    const peft = PeftModel.create(
      model,
      { r: 2, alpha: 4, targets: ["k_proj", "up_proj"], initLoraWeights: false, modulesToSave: ["lm_head"], bias: "all" },
      { seed: 4 },
    );
    t.after(() => peft.dispose());
    const adapterDir = path.join(workDir("init-mts"), "adapter");
    await saveAdapter(peft, adapterDir);
    const examples = tinyData(8, 13);
    const trainer = new Trainer(new LoraTrainable(peft), examples, {
      lr: 0.01,
      batchSize: 4,
      maxSteps: 4,
      schedule: "constant",
      weightDecay: 0.05,
      maxGradNorm: 0,
      shuffle: false,
    });
    const steps = referenceSteps(trainer, examples, 4);
    await trainer.train();
    const ref = runReference([
      {
        name: "m",
        kind: "lora_train",
        model: modelDir,
        adapter: adapterDir,
        steps,
        lr: 0.01,
        weight_decay: 0.05,
        max_grad_norm: 0,
        schedule: "constant",
        total_steps: 4,
      },
    ]).m!;
    assertSameSteps(trainer.history, ref.steps!, "qwen2 modules_to_save + bias=all");
  });

  test("full fine-tuning (tied GPT-2, LayerNorm and biases exempt from decay) matches step by step", needsTorch, async () => {
    const { model, dir: modelDir } = await tinyModel("gpt2");
    const examples = tinyData(8, 5);
    const trainable: Trainable = new FullTrainable(model);
    const trainer = new Trainer(trainable, examples, {
      lr: 0.005,
      batchSize: 4,
      maxSteps: 4,
      schedule: "linear",
      warmupSteps: 1,
      weightDecay: 0.1,
      maxGradNorm: 1,
      shuffle: false,
    });
    const steps = referenceSteps(trainer, examples, 4);
    await trainer.train();
    const ref = runReference([
      {
        name: "f",
        kind: "full_train",
        model: modelDir,
        steps,
        lr: 0.005,
        weight_decay: 0.1,
        max_grad_norm: 1,
        schedule: "linear",
        warmup_steps: 1,
        total_steps: 4,
      },
    ]).f!;
    assertSameSteps(trainer.history, ref.steps!, "gpt2 full");
  });
});
