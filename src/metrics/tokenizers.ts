/**
 * sacrebleu's BLEU tokenizers: each maps a detokenized line to space-separated tokens.
 * Every regex uses the "u" flag so that character classes see code points, as Python does.
 */
import { codePoints, pySplit } from "./pycompat.js";

export const TOKENIZERS = ["13a", "none", "intl", "char"] as const;
export type TokenizerName = (typeof TOKENIZERS)[number];
export type Tokenizer = (line: string) => string;

export function isTokenizerName(name: string): name is TokenizerName {
  return (TOKENIZERS as readonly string[]).includes(name);
}

/** Collapses whitespace runs and trims, with Python's notion of whitespace. */
const normalizeSpaces = (line: string) => pySplit(line).join(" ");

// mteval-v13a's language-dependent rules, applied in order. The first class is the ASCII
// punctuation except ' , - . (which the later rules treat by context), plus space.
const RULES_13A: [RegExp, string][] = [
  [/([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/gu, " $1 "],
  // period and comma split off unless preceded by a digit…
  [/([^0-9])([.,])/gu, "$1 $2 "],
  // …or unless followed by one
  [/([.,])([^0-9])/gu, " $1 $2"],
  // a dash after a digit is a minus/range sign, not a hyphen
  [/([0-9])(-)/gu, "$1 $2 "],
];

/** mteval-v13a.pl tokenization, sacrebleu's default (`13a`). */
export function tokenize13a(line: string): string {
  line = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (line.includes("&")) {
    // Sequential, so "&amp;lt;" becomes "<" exactly as in sacrebleu.
    line = line.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  }
  // The padding lets the period/comma rules fire at the line's edges.
  line = ` ${line} `;
  for (const [re, replacement] of RULES_13A) line = line.replace(re, replacement);
  return normalizeSpaces(line);
}

// mteval-v14 "international" rules on Unicode categories: punctuation is split off unless it
// sits between digits on both sides; symbols always are.
const RULES_INTL: [RegExp, string][] = [
  [/(\P{N})(\p{P})/gu, "$1 $2 "],
  [/(\p{P})(\P{N})/gu, " $1 $2"],
  [/(\p{S})/gu, " $1 "],
];

/** mteval-v14 international tokenization (`intl`). */
export function tokenizeIntl(line: string): string {
  for (const [re, replacement] of RULES_INTL) line = line.replace(re, replacement);
  return normalizeSpaces(line);
}

/** Every character (code point) a token (`char`), for languages written without spaces. */
export function tokenizeChar(line: string): string {
  return codePoints(line).join(" ");
}

/** No tokenization (`none`): the text is only split on whitespace later. */
export function tokenizeNone(line: string): string {
  return line;
}

export function getTokenizer(name: TokenizerName): Tokenizer {
  switch (name) {
    case "13a":
      return tokenize13a;
    case "intl":
      return tokenizeIntl;
    case "char":
      return tokenizeChar;
    case "none":
      return tokenizeNone;
  }
}
