/** `loralab bleu`: sacrebleu-compatible BLEU / chrF of stdin against reference files. */
import { readFile } from "node:fs/promises";
import { nonNegativeInt, nonNegativeNumber, oneOf, validate } from "../core/check.js";
import { inputError, UserError } from "../core/errors.js";
import {
  corpusBleu,
  formatBleuScore,
  sentenceBleu,
  SMOOTH_DEFAULTS,
  SMOOTH_METHODS,
  type BleuOptions,
  type BleuScore,
} from "../metrics/bleu.js";
import { corpusChrf, formatChrfScore, sentenceChrf, type ChrfOptions, type ChrfScore } from "../metrics/chrf.js";
import { pyRstrip } from "../metrics/pycompat.js";
import { TOKENIZERS } from "../metrics/tokenizers.js";
import { numberFlag, parseCommandArgs } from "./args.js";

const usage = `usage: loralab bleu --ref REF [--ref REF2 ...] [options] < HYP

Scores the hypotheses on stdin (one segment per line) against one or more
reference files with the same number of lines, as sacrebleu 2.6.0 does.

options:
  --ref FILE                reference file (repeat for several references;
                            positional FILEs are taken as references too)
  --metric bleu|chrf        default bleu
  --sentence                one score per line (BLEU: effective order on)
  --json                    JSON object(s) with full-precision numbers
  --lowercase               case-insensitive scoring
 BLEU:
  --tokenize 13a|none|intl|char          default 13a
  --smooth-method exp|floor|add-k|none   default exp
  --smooth-value X          for floor (default 0.1) and add-k (default 1)
  --effective-order, --no-effective-order
                            default: off for corpus, on with --sentence
 chrF:
  --chrf-word-order N       0 = chrF2 (default), 2 = chrF2++`;

/** Where the command reads and writes; tests pass their own. */
export interface BleuIO {
  readStdin(): Promise<string>;
  write(text: string): void;
}

const processIO: BleuIO = {
  async readStdin() {
    if (process.stdin.isTTY) throw new UserError("reads hypotheses from stdin: loralab bleu --ref REF < HYP");
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    // Buffer decoding keeps a leading BOM as a character, like Python's utf-8 codec.
    return Buffer.concat(chunks).toString("utf8");
  },
  write(text) {
    process.stdout.write(text);
  },
};

/** Lines as sacrebleu's CLI reads them: split on "\n" only, trailing whitespace stripped. */
function toLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map(pyRstrip);
}

async function readReference(file: string): Promise<string[]> {
  try {
    return toLines((await readFile(file)).toString("utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : `cannot read (${code ?? (e as Error).message})`;
    throw inputError(file, what);
  }
}

function bleuJson(s: BleuScore) {
  return {
    score: s.score,
    precisions: s.precisions,
    bp: s.bp,
    ratio: s.ratio,
    sys_len: s.sysLen,
    ref_len: s.refLen,
    signature: s.signature,
  };
}

function chrfJson(s: ChrfScore) {
  return {
    name: s.name,
    score: s.score,
    char_order: s.charOrder,
    word_order: s.wordOrder,
    beta: s.beta,
    signature: s.signature,
  };
}

export async function bleu(argv: string[], io: BleuIO = processIO): Promise<number> {
  const { values: v, positionals } = parseCommandArgs(argv, {
    ref: { type: "string", multiple: true },
    metric: { type: "string" },
    sentence: { type: "boolean" },
    json: { type: "boolean" },
    lowercase: { type: "boolean" },
    tokenize: { type: "string" },
    "smooth-method": { type: "string" },
    "smooth-value": { type: "string" },
    "effective-order": { type: "boolean" },
    "no-effective-order": { type: "boolean" },
    "chrf-word-order": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) {
    io.write(usage + "\n");
    return 0;
  }

  const metric = validate(v.metric ?? "bleu", oneOf("bleu", "chrf"), "", "--metric");
  const refFiles = [...(v.ref ?? []), ...positionals];
  if (refFiles.length === 0) throw new UserError("--ref is required");

  // Refuse flags of the other metric rather than silently ignoring them.
  const bleuOnly = ["tokenize", "smooth-method", "smooth-value", "effective-order", "no-effective-order"] as const;
  if (metric === "chrf") {
    const given = bleuOnly.find((flag) => v[flag] !== undefined);
    if (given) throw new UserError(`--${given} applies to --metric bleu only`);
  } else if (v["chrf-word-order"] !== undefined) {
    throw new UserError("--chrf-word-order applies to --metric chrf only");
  }

  let bleuOptions: BleuOptions = {};
  let chrfOptions: ChrfOptions = {};
  if (metric === "bleu") {
    const tokenize = validate(v.tokenize ?? "13a", oneOf(...TOKENIZERS), "", "--tokenize");
    const smoothMethod = validate(v["smooth-method"] ?? "exp", oneOf(...SMOOTH_METHODS), "", "--smooth-method");
    if (v["smooth-value"] !== undefined && SMOOTH_DEFAULTS[smoothMethod] === null) {
      throw new UserError(`--smooth-value applies to --smooth-method floor or add-k, not ${smoothMethod}`);
    }
    const smoothValue = numberFlag("--smooth-value", v["smooth-value"], nonNegativeNumber, SMOOTH_DEFAULTS[smoothMethod] ?? 0);
    if (v["effective-order"] && v["no-effective-order"]) {
      throw new UserError("--effective-order and --no-effective-order are mutually exclusive");
    }
    const effectiveOrder = v["effective-order"] ? true : v["no-effective-order"] ? false : undefined;
    bleuOptions = {
      tokenize,
      smoothMethod,
      lowercase: v.lowercase ?? false,
      effectiveOrder,
      smoothValue: SMOOTH_DEFAULTS[smoothMethod] === null ? null : smoothValue,
    };
  } else {
    const wordOrder = numberFlag("--chrf-word-order", v["chrf-word-order"], nonNegativeInt, 0);
    chrfOptions = { wordOrder, lowercase: v.lowercase ?? false };
  }

  // References first: a bad file fails before we block on stdin.
  const refs: string[][] = [];
  for (const file of refFiles) refs.push(await readReference(file));
  const hyps = toLines(await io.readStdin());
  if (hyps.length === 0) throw new UserError("no hypotheses on stdin");
  refs.forEach((lines, k) => {
    if (lines.length !== hyps.length) {
      throw inputError(refFiles[k]!, `${lines.length} lines, but stdin has ${hyps.length} hypotheses`);
    }
  });

  const emit = (text: string, json: object) => io.write((v.json ? JSON.stringify(json) : text) + "\n");
  if (metric === "bleu") {
    if (v.sentence) {
      hyps.forEach((hyp, i) => {
        const s = sentenceBleu(
          hyp,
          refs.map((stream) => stream[i]!),
          bleuOptions,
        );
        emit(formatBleuScore(s), bleuJson(s));
      });
    } else {
      const s = corpusBleu(hyps, refs, bleuOptions);
      emit(formatBleuScore(s), bleuJson(s));
    }
  } else if (v.sentence) {
    hyps.forEach((hyp, i) => {
      const s = sentenceChrf(
        hyp,
        refs.map((stream) => stream[i]!),
        chrfOptions,
      );
      emit(formatChrfScore(s), chrfJson(s));
    });
  } else {
    const s = corpusChrf(hyps, refs, chrfOptions);
    emit(formatChrfScore(s), chrfJson(s));
  }
  return 0;
}
