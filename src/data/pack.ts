/**
 * Packing text for language modelling: the whole text tokenized once, BOS at the start (when the tokenizer has
 * one) and no EOS, cut into consecutive blocks of `blockSize` tokens; a last block of ≥ 2 tokens is kept (one
 * token predicts nothing).
 */
import { UserError } from "../core/errors.js";
import type { Tokenizer } from "../models/tokenizer.js";

export interface PackOptions {
  tokenizer: Tokenizer;
  /** Tokens per block (≥ 2). */
  blockSize: number;
}

/** A block: its row and where it came from ("story.txt block 4 (tokens 384…511)"). */
export interface Block {
  row: { input_ids: number[] };
  where: string;
}

export function packOptions(options: Partial<PackOptions>, what: string): PackOptions {
  if (options.tokenizer === undefined || options.blockSize === undefined) {
    throw new UserError(`${what}: plain text is tokenized and packed into blocks; give { blockSize, tokenizer }`);
  }
  return { tokenizer: options.tokenizer, blockSize: options.blockSize };
}

export function packText(text: string, name: string, { tokenizer, blockSize }: PackOptions): Block[] {
  if (!(Number.isInteger(blockSize) && blockSize >= 2))
    throw new UserError(`${name}: blockSize must be an integer ≥ 2, got ${JSON.stringify(blockSize)}`);
  if (!tokenizer || typeof tokenizer.encode !== "function") throw new UserError(`${name}: packing text needs a tokenizer`);
  if (text.trim() === "") throw new UserError(`${name}: no text (the file is empty)`);
  const ids = tokenizer.encode(text, { specialTokens: false });
  if (tokenizer.bosTokenId !== undefined) ids.unshift(tokenizer.bosTokenId);
  const blocks: Block[] = [];
  for (let start = 0, k = 1; start < ids.length; start += blockSize, k++) {
    const block = ids.slice(start, start + blockSize);
    if (block.length < 2) break;
    blocks.push({ row: { input_ids: block }, where: `${name} block ${k} (tokens ${start}…${start + block.length - 1})` });
  }
  if (blocks.length === 0) throw new UserError(`${name}: the text is a single token; nothing to learn from`);
  return blocks;
}
