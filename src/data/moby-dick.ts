/**
 * Moby-Dick as one text, and the fixed train/validation split the shipped model (models/tiny-moby) was
 * trained and evaluated on: the scripts that built it (scripts/train-tokenizer.ts, scripts/pretrain.ts) and
 * the tests use this one function, so "held-out" always means the same characters.
 */
import { corpusRows } from "./corpora.js";

/** The fraction of the text, at its end, held out for validation. */
export const MOBY_DICK_VALIDATION_FRACTION = 0.05;

/** The whole book: its 139 sections joined by "\n\n" (as Dataset.pack joins rows). */
export function mobyDickText(): string {
  return corpusRows("moby-dick")
    .map((row) => String(row.text))
    .join("\n\n");
}

export interface TextSplit {
  train: string;
  validation: string;
}

/**
 * The book cut in two at the first paragraph break ("\n\n") at or after (1 − validationFraction) of its
 * length: `train` is everything before the break, `validation` everything after it (the last chapters and
 * the Epilogue for the default 5 %). Deterministic: the same text and fraction give the same split.
 */
export function mobyDickSplit(validationFraction = MOBY_DICK_VALIDATION_FRACTION, text = mobyDickText()): TextSplit {
  if (!(validationFraction > 0 && validationFraction < 1))
    throw new RangeError(`validationFraction must lie in (0, 1), got ${validationFraction}`);
  const cut = text.indexOf("\n\n", Math.floor(text.length * (1 - validationFraction)));
  if (cut === -1) throw new RangeError("no paragraph break after the split point");
  return { train: text.slice(0, cut), validation: text.slice(cut + 2) };
}

/** What packBlocks needs of a tokenizer. */
export interface BlockTokenizer {
  encode(text: string, options?: { specialTokens?: boolean }): number[];
  readonly bosTokenId: number | undefined;
}

/**
 * `text` tokenized once (no special tokens) and cut into consecutive blocks of `blockSize` tokens that each
 * start with BOS (BOS + blockSize − 1 text tokens), so that every block looks like what the model sees at
 * inference: `<s>` followed by text. The last block may be shorter (it is kept when it holds at least one
 * text token). This is how the shipped model was trained and is evaluated.
 */
export function packBlocks(text: string, tokenizer: BlockTokenizer, blockSize: number): { inputIds: number[] }[] {
  if (!(Number.isInteger(blockSize) && blockSize >= 2)) throw new RangeError(`blockSize must be an integer ≥ 2, got ${blockSize}`);
  const bos = tokenizer.bosTokenId;
  if (bos === undefined) throw new Error("packBlocks: the tokenizer has no BOS token");
  const ids = tokenizer.encode(text, { specialTokens: false });
  const blocks: { inputIds: number[] }[] = [];
  for (let start = 0; start < ids.length; start += blockSize - 1)
    blocks.push({ inputIds: [bos, ...ids.slice(start, start + blockSize - 1)] });
  return blocks;
}
