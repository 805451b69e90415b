/**
 * Trains the byte-level BPE tokenizer of the shipped model (models/tiny-moby) on the training part of
 * Moby-Dick (src/data/moby-dick.ts: everything but the last 5 %, which is held out for validation) and
 * writes it as Hugging Face tokenizer files:
 *
 *   tokenizer.json           model BPE (vocab + merges), pre-tokenizer and decoder ByteLevel, added tokens
 *   tokenizer_config.json    <s> / </s>, add_bos_token true, add_eos_token false, model_max_length
 *   special_tokens_map.json
 *
 *   node --import tsx scripts/train-tokenizer.ts [--out models/tiny-moby] [--vocab 1024]
 *
 * The algorithm is GPT-2's: split the text with GPT-2's pre-tokenization regex into words, map each word's
 * UTF-8 bytes to printable characters (bytes_to_unicode), start from the 256 byte tokens and repeatedly merge
 * the most frequent adjacent pair (counted over distinct words, weighted by their frequency) until the
 * vocabulary is full. Ties go to the pair with the smaller (left id, right id), so the output is deterministic.
 * Only the files this script owns are written; other files in --out are left alone.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { mobyDickSplit } from "../src/data/moby-dick.js";
import { Tokenizer } from "../src/models/tokenizer.js";
import { writeFileAtomicSync } from "../src/core/files.js";

/** GPT-2's pre-tokenization regex (the one Hugging Face's ByteLevel pre-tokenizer uses with use_regex). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export const BOS = "<s>";
export const EOS = "</s>";
const SPECIALS = [BOS, EOS];
export const MODEL_MAX_LENGTH = 256;

/** GPT-2's bytes_to_unicode: each byte → a printable character (printable Latin-1 bytes map to themselves). */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(printable.includes(b) ? b : 256 + n++);
  return out;
}

export interface TrainedBpe {
  /** Token strings by id: the special tokens, the 256 byte characters (in byte order), then merged tokens. */
  vocab: string[];
  /** Merges in the order they were learned (= their rank), as pairs of token strings. */
  merges: [string, string][];
}

/** Words of `text` (GPT-2 regex) with their counts, each as a string of byte characters. */
export function countWords(text: string): Map<string, number> {
  const byteChar = bytesToUnicode();
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const m of text.matchAll(GPT2_PATTERN)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const out = new Map<string, number>();
  for (const [word, count] of counts) {
    const mapped = Array.from(encoder.encode(word), (b) => byteChar[b]).join("");
    out.set(mapped, (out.get(mapped) ?? 0) + count);
  }
  return out;
}

/** Learns merges until the vocabulary (special tokens + bytes + merged tokens) has `vocabSize` entries. */
export function trainBpe(words: Map<string, number>, vocabSize: number, specials: string[] = SPECIALS): TrainedBpe {
  const vocab = [...specials, ...bytesToUnicode()];
  if (vocabSize < vocab.length) throw new Error(`vocabSize ${vocabSize} is smaller than the ${vocab.length} special and byte tokens`);
  const idOf = new Map(vocab.map((t, i) => [t, i]));
  const merges: [string, string][] = [];
  const KEY = 1 << 16; // pair (a, b) ↔ a * KEY + b; ids stay far below 2^16
  // Distinct words in a fixed order (sorted), as arrays of token ids, with their frequencies.
  const entries = [...words].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const symbols = entries.map(([w]) => Array.from(w, (c) => idOf.get(c)!));
  const freq = entries.map(([, n]) => n);
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>(); // may list words that no longer hold the pair
  const addPairs = (w: number, sign: 1 | -1) => {
    const s = symbols[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i]! * KEY + s[i + 1]!;
      const n = (pairCount.get(key) ?? 0) + sign * freq[w]!;
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < symbols.length; w++) addPairs(w, 1);

  while (vocab.length < vocabSize) {
    let best = -1;
    let bestCount = 0;
    for (const [key, n] of pairCount) if (n > bestCount || (n === bestCount && key < best)) [best, bestCount] = [key, n];
    if (best < 0) break; // every word is a single token
    const a = Math.floor(best / KEY);
    const b = best % KEY;
    const merged = vocab[a]! + vocab[b]!;
    let id = idOf.get(merged);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(merged);
      idOf.set(merged, id);
    }
    merges.push([vocab[a]!, vocab[b]!]);
    for (const w of [...pairWords.get(best)!].sort((x, y) => x - y)) {
      addPairs(w, -1);
      const s = symbols[w]!;
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(id);
          i++;
        } else {
          next.push(s[i]!);
        }
      }
      symbols[w] = next;
      addPairs(w, 1);
    }
    pairWords.delete(best);
  }
  return { vocab, merges };
}

/** The three Hugging Face tokenizer files for a trained BPE. */
export function tokenizerFiles({ vocab, merges }: TrainedBpe, specials: string[] = SPECIALS): Record<string, string> {
  const added = specials.map((content) => ({
    id: vocab.indexOf(content),
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bosId = vocab.indexOf(BOS);
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    // What add_bos_token says, for readers that apply tokenizer.json's post-processor (transformers, tokenizers).
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: BOS, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: BOS, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [BOS]: { id: BOS, ids: [bosId], tokens: [BOS] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    bos_token: BOS,
    eos_token: EOS,
    clean_up_tokenization_spaces: false,
    model_max_length: MODEL_MAX_LENGTH,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  const specialMap = { bos_token: BOS, eos_token: EOS };
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  return { "tokenizer.json": json(tokenizer), "tokenizer_config.json": json(config), "special_tokens_map.json": json(specialMap) };
}

/** Texts every tokenizer built here must encode and decode exactly. */
export const ROUND_TRIP_SAMPLES = [
  "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.",
  "  Leading spaces, trailing spaces  \n\n\ttabs,\r\nCRLF line ends, and   runs   of   spaces.  ",
  "Digits: 0 1 12 123 1234 3.14159 -42 1,000,000 (1851); punctuation: !?.,;:'\"()[]{}<>@#$%^&*_+=|\\/~`",
  "Unicode: café, naïve, Œdipus, Ἀχιλλεύς, חן, 日本語, emoji 🐋🐳 and a combining é; the end—",
  "He's, they're, we've, I'm, you'll, she'd — and 'quoted' words.",
];

function main(): void {
  const { values } = parseArgs({
    options: { out: { type: "string", default: "models/tiny-moby" }, vocab: { type: "string", default: "1024" } },
  });
  const vocabSize = Number(values.vocab);
  const out = path.resolve(values.out!);
  const { train, validation } = mobyDickSplit();
  const started = performance.now();
  const words = countWords(train);
  const bpe = trainBpe(words, vocabSize);
  const seconds = (performance.now() - started) / 1000;
  fs.mkdirSync(out, { recursive: true });
  for (const [name, text] of Object.entries(tokenizerFiles(bpe))) writeFileAtomicSync(path.join(out, name), text);
  console.log(
    `trained on ${train.length.toLocaleString("en-US")} characters (${words.size.toLocaleString("en-US")} distinct words): ${bpe.vocab.length} tokens, ${bpe.merges.length} merges in ${seconds.toFixed(1)} s → ${out}`,
  );

  // Check: our Tokenizer (through @huggingface/tokenizers) round-trips text exactly.
  const tokenizer = Tokenizer.fromDirectory(out);
  for (const text of [...ROUND_TRIP_SAMPLES, validation.slice(0, 5000)]) {
    const ids = tokenizer.encode(text);
    if (ids[0] !== tokenizer.bosTokenId) throw new Error("encode() did not add <s>");
    const back = tokenizer.decode(ids);
    if (back !== text) throw new Error(`round trip failed:\n  ${JSON.stringify(text)}\n→ ${JSON.stringify(back)}`);
  }
  const perChar = (t: string) => t.length / tokenizer.encode(t, { specialTokens: false }).length;
  console.log(`round trips exact; characters per token: train ${perChar(train).toFixed(2)}, validation ${perChar(validation).toFixed(2)}`);
  console.log(
    `first merges: ${bpe.merges
      .slice(0, 12)
      .map((m) => m.join("+"))
      .join("  ")}`,
  );
  console.log(
    `last tokens: ${bpe.vocab
      .slice(-12)
      .map((t) => JSON.stringify(t))
      .join(" ")}`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) main();
