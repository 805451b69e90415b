/**
 * The README's memory table: full fine-tuning, LoRA and QLoRA side by side on one model, measured by `compare`.
 *
 *   node --import tsx scripts/qlora-compare.ts [--model tiny-moby] [--steps 20] [--batch 8] [--seq 128] [--methods full,lora,qlora]
 *
 * Data: blocks of the training part of Moby-Dick when the model has a tokenizer, else seeded random token ids.
 */
import { parseArgs } from "node:util";
import { compare, model, type Method } from "../dsl/index.js";
import { Random } from "../src/core/random.js";
import { mobyDickSplit, packBlocks } from "../src/data/moby-dick.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "tiny-moby" },
    steps: { type: "string", default: "20" },
    batch: { type: "string", default: "8" },
    seq: { type: "string", default: "128" },
    methods: { type: "string", default: "full,lora,qlora" },
    checkpointing: { type: "boolean", default: false },
  },
});
const [steps, batch, seq] = [Number(values.steps), Number(values.batch), Number(values.seq)];
const base = await model(values.model);
const tokenizer = base.loaded.tokenizer;
const random = new Random(0);
const rows = tokenizer
  ? packBlocks(mobyDickSplit().train.slice(0, 200_000), tokenizer, seq).map((b) => ({ input_ids: b.inputIds }))
  : Array.from({ length: 4 * batch }, () => ({ input_ids: Array.from({ length: seq }, () => random.int(base.loaded.config.vocabSize)) }));
const all: Record<string, Method> = { full: base.full(), lora: base.lora(8), qlora: base.qlora(8) };
const methods = Object.fromEntries(values.methods.split(",").map((m) => [m, all[m]!]));
const table = await compare(methods, rows, {
  maxSteps: steps,
  batchSize: batch,
  gradientCheckpointing: values.checkpointing,
  runsDir: false,
});
console.log(table.table().toMarkdown());
