/** The sequences and models compared against the PyTorch reference (shared by the test and `npm run reference`). */
import * as path from "node:path";
import { Tokenizer } from "../../src/models/tokenizer.js";
import { STORIES } from "./paths.js";
import type { ReferenceCase } from "./reference.js";
import { TINY_KINDS, TINY_VOCAB, writeTinyCheckpoint } from "./tiny-models.js";

export const STORY_TEXTS = [
  "Once upon a time, there was a cat.",
  "Tom and Sue went to the beach. They built a big sand castle and laughed.",
  "The little dog was sad because he lost his red ball in the garden.",
];

/** A long story (~300 tokens) so RoPE is checked far from position 0. */
export const LONG_TEXT = Array.from(
  { length: 12 },
  (_, i) => `On day ${i + 1}, Lily and her friend Ben played with a ball in the park, and the sun was warm.`,
).join(" ");

export const GREEDY_PROMPTS = [[1, 403, 407, 261, 378], [1]];

/** Right-pads `seqs` into equal rows with an attention mask. */
export function padRight(seqs: number[][], pad = 0): { input_ids: number[][]; attention_mask: number[][] } {
  const width = Math.max(...seqs.map((s) => s.length));
  return {
    input_ids: seqs.map((s) => [...s, ...Array(width - s.length).fill(pad)]),
    attention_mask: seqs.map((s) => [...Array(s.length).fill(1), ...Array(width - s.length).fill(0)]),
  };
}

function tinySequences(seed: number): number[][] {
  return [11, 7, 4].map((len, row) => Array.from({ length: len }, (_, t) => (seed * 31 + row * 17 + t * 13 + 3) % TINY_VOCAB));
}

export async function buildReferenceCases(workDir: string): Promise<ReferenceCase[]> {
  const tokenizer = Tokenizer.fromDirectory(STORIES);
  const stories = STORY_TEXTS.map((t) => tokenizer.encode(t));
  const long = tokenizer.encode(LONG_TEXT);
  const cases: ReferenceCase[] = [
    { name: "stories/loss-single", model: STORIES, kind: "loss", input_ids: [stories[0]!] },
    { name: "stories/loss-batch", model: STORIES, kind: "loss", ...padRight(stories), per_token: true },
    { name: "stories/loss-long", model: STORIES, kind: "loss", input_ids: [long] },
    { name: "stories/logits", model: STORIES, kind: "logits", input_ids: stories[1]!, positions: [0, 5, -1] },
    ...GREEDY_PROMPTS.map((p, i): ReferenceCase => ({
      name: `stories/greedy-${i}`,
      model: STORIES,
      kind: "greedy",
      input_ids: p,
      max_new_tokens: 30,
      eos: true,
    })),
  ];
  for (const [k, kind] of TINY_KINDS.entries()) {
    const dir = await writeTinyCheckpoint(path.join(workDir, kind), kind, 1000 + k);
    const seqs = tinySequences(k);
    cases.push(
      { name: `${kind}/loss-batch`, model: dir, kind: "loss", ...padRight(seqs), per_token: true },
      { name: `${kind}/logits`, model: dir, kind: "logits", input_ids: seqs[0]! },
      { name: `${kind}/greedy`, model: dir, kind: "greedy", input_ids: seqs[2]!, max_new_tokens: 12, eos: false },
    );
  }
  return cases;
}
