/**
 * QLoRA end to end: LoRA adapters over NF4 projections train (the loss falls) with flat tensor memory, their
 * files are plain PEFT adapters, merging into NF4 is refused while merging into a float32 copy works, DoRA widens
 * the base anew, and the DSL's base.qlora(…) and compare's QLoRA row report measured memory.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { initBackend, tf } from "../src/backend/index.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { mobyDickSplit, packBlocks } from "../src/data/moby-dick.js";
import { PeftModel } from "../src/lora/peft-model.js";
import { loadAdapter, saveAdapter } from "../src/lora/adapter-io.js";
import { floatCopy } from "../src/lora/float-copy.js";
import { LoraTrainable } from "../src/train/trainable.js";
import { Trainer } from "../src/train/trainer.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { readSafetensors } from "../src/checkpoint/safetensors.js";
import { compare, model, UserError, type Model } from "../dsl/index.js";
import { writeTinyCheckpoint, TINY_VOCAB } from "./helpers/tiny-models.js";
import { tempDir } from "./helpers/paths.js";
import { expectCliError, runCli, writeFile } from "./helpers/cli.js";

const work = tempDir("qlora-train");
let nf4: LoadedModel;
let blocks: { inputIds: number[] }[];

before(async () => {
  await initBackend();
  nf4 = await loadModel("tiny-moby", { quantize: "nf4-dq" });
  blocks = packBlocks(mobyDickSplit().train.slice(0, 40_000), nf4.tokenizer!, 64);
});
after(() => {
  nf4.model.dispose();
  fs.rmSync(work, { recursive: true, force: true });
});

const meanLoss = (history: { loss: number }[]) => history.reduce((s, h) => s + h.loss, 0) / history.length;

test("QLoRA on the NF4 shipped model lowers the loss, and tensor memory stays flat over 30 steps", async (t) => {
  const peft = PeftModel.create(nf4.model, { r: 8, targets: "all-linear" }, { adapterName: "fit", seed: 1, training: true });
  t.after(() => peft.deleteAdapter("fit"));
  const trainer = new Trainer(new LoraTrainable(peft), blocks.slice(0, 60), { maxSteps: 30, batchSize: 4, lr: 3e-3 });
  const counts: number[] = [];
  trainer.on((e) => {
    if (e.type === "step") counts.push(tf.memory().numTensors);
  });
  const result = await trainer.train();
  trainer.dispose();
  const first = meanLoss(result.history.slice(0, 3));
  const last = meanLoss(result.history.slice(-3));
  t.diagnostic(`loss ${first.toFixed(3)} → ${last.toFixed(3)}; tensors per step ${counts[0]} … ${counts.at(-1)}`);
  assert.ok(last < first - 0.05, `the loss should fall: first steps ${first}, last steps ${last}`);
  // Step 1 creates the optimizer's moments; from then on every step ends with the same tensors.
  assert.deepEqual(new Set(counts.slice(1)), new Set([counts[1]]), `tensor count per step: ${counts.join(", ")}`);
});

test("merging into NF4 weights is refused with a clear error; the model is left as it was", () => {
  const peft = PeftModel.create(nf4.model, { r: 2 }, { adapterName: "nomerge", seed: 2 });
  try {
    assert.throws(
      () => peft.merge(),
      (e: unknown) =>
        e instanceof UserError && /cannot merge into a base weight stored as nf4\+dq/.test(e.message) && /float32 copy/.test(e.message),
    );
    assert.deepEqual(peft.loraLayer("model.layers.0.self_attn.q_proj").merged, []);
  } finally {
    peft.deleteAdapter("nomerge");
  }
});

test("DoRA over an NF4 base computes what DoRA over the widened float32 weights computes", async () => {
  const copy = floatCopy(nf4.model, nf4);
  const onNf4 = PeftModel.create(nf4.model, { r: 4, dora: true, targets: ["q_proj", "down_proj"] }, { adapterName: "dora", seed: 4 });
  const onCopy = PeftModel.create(copy, { r: 4, dora: true, targets: ["q_proj", "down_proj"] }, { adapterName: "dora", seed: 4 });
  try {
    tf.tidy(() => {
      // Same non-zero B on both, so the magnitudes and directions matter.
      const b = new Map(onCopy.trainableParameters());
      for (const [name, p] of onNf4.trainableParameters())
        if (name.includes("lora_B")) {
          const v = tf.randomNormal(p.shape, 0, 0.05, "float32", 3);
          p.assign(v);
          b.get(name)!.assign(v);
        }
    });
    const ids = tf.tensor2d([[5, 9, 77, 300, 12, 41, 8, 2]], [1, 8], "int32");
    const diff = tf.tidy(() => onNf4.forward(ids).sub(onCopy.forward(ids)).abs().max().dataSync()[0]!);
    ids.dispose();
    assert.ok(diff <= 1e-5, `max logit difference ${diff}`);
    const magnitude = (p: PeftModel) => p.loraLayer("model.layers.1.mlp.down_proj").weightsOf("dora").magnitude!.dataSync();
    assert.deepEqual(magnitude(onNf4), magnitude(onCopy), "initial magnitudes: the row norms of the widened weight");
  } finally {
    onNf4.deleteAdapter("dora");
    copy.dispose();
  }
});

test("a QLoRA adapter is a plain PEFT adapter: the same files as LoRA on float32, and it loads onto the float32 model", async (t) => {
  const f32 = await loadModel("tiny-moby");
  t.after(() => f32.model.dispose());
  const config = { r: 4, targets: "all-linear" as const, baseModelNameOrPath: "tiny-moby" };
  const qlora = PeftModel.create(nf4.model, config, { adapterName: "files", seed: 6 });
  const lora = PeftModel.create(f32.model, config, { adapterName: "files", seed: 6 });
  const [qDir, lDir] = [path.join(work, "qlora-adapter"), path.join(work, "lora-adapter")];
  await saveAdapter(qlora, qDir, "files");
  await saveAdapter(lora, lDir, "files");
  qlora.deleteAdapter("files");
  lora.deleteAdapter("files");
  assert.deepEqual(
    fs.readFileSync(path.join(qDir, "adapter_config.json"), "utf8"),
    fs.readFileSync(path.join(lDir, "adapter_config.json"), "utf8"),
  );
  const [q, l] = [
    await readSafetensors(path.join(qDir, "adapter_model.safetensors")),
    await readSafetensors(path.join(lDir, "adapter_model.safetensors")),
  ];
  assert.deepEqual([...q.keys()].sort(), [...l.keys()].sort());
  for (const [k, v] of q) assert.deepEqual(v.shape, l.get(k)!.shape, k);
  const onF32 = await loadAdapter(f32.model, qDir);
  assert.deepEqual(onF32.activeAdapters, ["default"]);
  onF32.deleteAdapter("default");
});

test("GPT-2: QLoRA over Conv1D projections records fan_in_fan_out as PEFT does for GPT-2", async () => {
  const dir = await writeTinyCheckpoint(path.join(work, "gpt2"), "gpt2", 8);
  const q = await loadModel(dir, { quantize: "nf4" });
  const peft = PeftModel.create(q.model, { r: 2, targets: ["c_attn"] }, { seed: 1 });
  assert.equal(peft.adapters.get("default")!.config.fanInFanOut, true);
  const ids = tf.tensor2d([[1, 2, 3, TINY_VOCAB - 1]], [1, 4], "int32");
  assert.deepEqual(
    tf.tidy(() => peft.forward(ids).shape),
    [1, 4, TINY_VOCAB],
  );
  ids.dispose();
  q.model.dispose();
});

// The DSL: base.qlora, saveMerged from an NF4 base, compare's QLoRA row.
let base: Model;
const rows = () => blocks.slice(0, 24).map((b) => ({ input_ids: b.inputIds }));

test("DSL: base.qlora(r) trains on the NF4 copy of the base (loaded once), on every linear layer", async () => {
  base = await model("tiny-moby");
  const run = await base.qlora(4).train(rows(), { maxSteps: 3, batchSize: 4, runsDir: false });
  assert.equal(run.model.label, "QLoRA r=4");
  assert.equal(run.model.base.loaded.quantize, "nf4-dq");
  assert.equal(await base.quantized(), run.model.base, "the NF4 copy is shared by every qlora(…)");
  assert.deepEqual(run.model.config.targetModules, "all-linear");
  assert.equal(run.parameters.all, base.parameters + run.parameters.trainable, "all params count the compact weights");
  assert.deepEqual(Object.keys(run.memory.weights).sort(), ["f32", "nf4+dq"]);
  assert.ok(run.memory.activationPeakBytes > 0 && run.memory.rssBytes > 0 && run.memory.optimizerBytes === 2 * 4 * run.trainableParams);
});

test("DSL: saveMerged of a QLoRA adapter writes a float32 model computing what the QLoRA model computes", async (t) => {
  const run = await base
    .qlora({ r: 4, targets: ["q_proj", "v_proj"] })
    .train(rows(), { maxSteps: 4, batchSize: 4, lr: 1e-2, runsDir: false });
  const dir = path.join(work, "merged");
  await run.model.saveMerged(dir);
  const merged = await loadModel(dir);
  t.after(() => merged.model.dispose());
  const data = rows().slice(0, 6);
  const ours = (await run.model.eval(data)).perplexity!;
  const theirs = perplexity(
    merged.model,
    data.map((r) => ({ inputIds: r.input_ids })),
  ).perplexity;
  assert.ok(Math.abs(ours / theirs - 1) < 1e-4, `QLoRA ${ours} vs merged float32 ${theirs}`);
});

test("compare: full, LoRA and QLoRA side by side with measured memory; QLoRA's projections at ≈ 4.13 bits/param", async () => {
  const c = await compare({ full: base.full(), lora: base.lora(8), qlora: base.qlora(8) }, rows(), {
    maxSteps: 2,
    batchSize: 4,
    runsDir: false,
  });
  const table = c.table().objects() as Record<string, unknown>[];
  assert.deepEqual(
    table.map((r) => r.method),
    ["full", "lora", "qlora"],
  );
  for (const column of ["weights_MiB", "weight_formats", "optimizer_MiB", "activations_MiB", "peak_MiB", "rss_MiB"])
    for (const row of table) assert.ok(row[column] !== undefined && row[column] !== null, `${row.method}: ${column}`);
  assert.equal(c.runs.qlora!.trainingOptions.lr, 2e-3, "QLoRA gets LoRA's default learning rate");
  const nf4Share = c.runs.qlora!.memory.weights["nf4+dq"]!;
  const bits = (8 * nf4Share.bytes) / nf4Share.params;
  assert.ok(bits > 4.12 && bits < 4.14, `bits per parameter ${bits}`);
  const [full, lora, qlora] = table as { weights_MiB: number; optimizer_MiB: number }[];
  assert.ok(qlora!.weights_MiB < lora!.weights_MiB && lora!.optimizer_MiB < full!.optimizer_MiB);
  assert.match(String(table[2]!.weight_formats), /^f32 [\d.]+ MiB, nf4\+dq [\d.]+ MiB$/);
});

// The command line: --qlora and --quantize.
const cliRows = () =>
  writeFile(
    work,
    "cli-rows.jsonl",
    rows()
      .slice(0, 8)
      .map((r) => JSON.stringify(r))
      .join("\n") + "\n",
  );

test("CLI: train --qlora trains an adapter on every linear layer of the NF4 base, reports the storage and the memory", () => {
  const out = path.join(work, "cli-qlora");
  const run = runCli([
    "train",
    "--model",
    "tiny-moby",
    "--data",
    cliRows(),
    "--qlora",
    "--lora",
    "r=4",
    "--steps",
    "2",
    "--batch",
    "4",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as {
    stopped: string;
    memory: { weights: Record<string, { params: number; bytes: number }>; step_peak_bytes: number };
  };
  assert.equal(report.stopped, "completed");
  assert.deepEqual(Object.keys(report.memory.weights).sort(), ["f32", "nf4+dq"]);
  assert.ok(report.memory.step_peak_bytes > 0);
  const config = JSON.parse(fs.readFileSync(path.join(out, "adapter_config.json"), "utf8")) as { target_modules: string[]; r: number };
  assert.equal(config.r, 4);
  assert.deepEqual([...config.target_modules].sort(), ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
  const quiet = runCli(["train", "--model", "tiny-moby", "--data", cliRows(), "--qlora", "--steps", "1", "--batch", "4"]);
  assert.match(quiet.stderr, /^weights: [\d,]+ params nf4\+dq \([\d.]+ KiB\), [\d,]+ params f32/m);
});

test("CLI: eval and generate take --quantize; a QLoRA adapter applies to the NF4 base", () => {
  const adapter = path.join(work, "cli-qlora");
  const ev = runCli(["eval", "--model", "tiny-moby", "--quantize", "nf4-dq", "--adapter", adapter, "--data", cliRows(), "--json"]);
  assert.equal(ev.status, 0, ev.stderr);
  assert.ok(Number.isFinite((JSON.parse(ev.stdout) as { perplexity: number }).perplexity));
  const gen = runCli([
    "generate",
    "--model",
    "tiny-moby",
    "--quantize",
    "nf4",
    "--prompt",
    "Call me Ishmael.",
    "--max-new-tokens",
    "5",
    "--json",
  ]);
  assert.equal(gen.status, 0, gen.stderr);
  assert.equal((JSON.parse(gen.stdout) as { ids: number[] }).ids.length, 5);
});

test("CLI: --quantize int8 names the formats", () => {
  expectCliError(
    ["eval", "--model", "tiny-moby", "--quantize", "int8", "--data", cliRows()],
    ['--quantize: expected one of "nf4", "nf4-dq", "f16" or "bf16", got "int8"'],
  );
});

test("CLI: --full with --qlora is refused (compact weights are frozen)", () => {
  expectCliError(["train", "--model", "tiny-moby", "--data", cliRows(), "--full", "--qlora"], ["--full trains every weight", "--qlora"]);
});
