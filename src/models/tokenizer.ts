/**
 * A model's tokenizer: tokenizer.json through @huggingface/tokenizers, with BOS/EOS added the way
 * tokenizer_config.json says (add_bos_token / add_eos_token), as transformers does for Llama tokenizers.
 * The files are validated first (./tokenizer-files.ts).
 */
import * as vm from "node:vm";
import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { UserError } from "../core/errors.js";
import { checkSpecialTokens, readTokenizerFiles, type TokenizerFiles, type TokenizerRegex } from "./tokenizer-files.js";

type Json = Record<string, unknown>;

export interface TokenizerOptions {
  /** The model's vocab_size (config.json): every id the tokenizer can produce must be below it. */
  vocabSize?: number;
}

/**
 * How long one encode may take when tokenizer.json brings its own regexes: 2 s plus 100 µs per character. A
 * byte-level BPE with Llama 3's split regex encodes Moby-Dick (1.2 M characters) at 5–6 µs per character on this
 * project's shared 2-core machine, so only a pattern that backtracks catastrophically gets near the deadline.
 */
export function encodeDeadlineMs(textLength: number): number {
  return 2000 + 0.1 * textLength;
}

/**
 * JavaScript regexes backtrack and cannot be interrupted from the same thread, except by V8's execution timeout:
 * when tokenizer.json brings regexes, encode and decode run as a vm script with a deadline. It costs ≈0.05–0.2 ms
 * per call (a watchdog thread), paid only by such tokenizers; the built-in pre-tokenizers are linear.
 */
class Deadline {
  private static readonly script = new vm.Script("tokenizer[method](input, options)");
  private readonly context: vm.Context;

  constructor(
    hf: HfTokenizer,
    private readonly file: string,
    private readonly regexes: TokenizerRegex[],
  ) {
    this.context = vm.createContext({ tokenizer: hf, method: "", input: undefined, options: {} });
  }

  /** `hf[method](input, options)`, stopped with a UserError naming the regexes once `length` characters' time is up. */
  run<T>(method: "encode" | "decode", input: string | number[], length: number, options: object): T {
    Object.assign(this.context, { method, input, options });
    const timeout = Math.ceil(encodeDeadlineMs(length));
    try {
      return Deadline.script.runInContext(this.context, { timeout }) as T;
    } catch (e) {
      if ((e as { code?: unknown }).code !== "ERR_SCRIPT_EXECUTION_TIMEOUT") throw e;
      const took = `${method === "encode" ? "tokenizing a" : "decoding into a"} ${length}-character text took over ${timeout} ms`;
      const [only] = this.regexes;
      if (this.regexes.length === 1 && only) {
        throw new UserError(
          `${this.file}: ${only.field}: expected a pattern that runs in linear time, got ${JSON.stringify(only.source)} (${took}: it backtracks catastrophically)`,
        );
      }
      const list = this.regexes.map((r) => `${r.field} ${JSON.stringify(r.source)}`).join(", ");
      throw new UserError(
        `${this.file}: expected regexes that run in linear time; ${took}, so one of these backtracks catastrophically: ${list}`,
      );
    } finally {
      this.context.input = undefined;
    }
  }
}

export class Tokenizer {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** The config's add_bos_token / add_eos_token; undefined = leave it to tokenizer.json's post-processor. */
  private readonly addBos: boolean | undefined;
  private readonly addEos: boolean | undefined;
  /** Set when tokenizer.json brings regexes (they could backtrack without end). */
  private readonly deadline: Deadline | undefined;
  /** tokenizer.json's path, as errors name it. */
  private readonly file: string;
  /** The tokenizer_config.json (over special_tokens_map.json) fields. */
  readonly config: Json;
  /** The Jinja chat template, if the model ships one. */
  readonly chatTemplate: string | undefined;

  private constructor(
    private readonly hf: HfTokenizer,
    files: TokenizerFiles,
    readonly vocabSize: number,
  ) {
    const ids = checkSpecialTokens(files, (t) => hf.token_to_id(t));
    this.bosTokenId = ids.bos_token;
    this.eosTokenId = ids.eos_token;
    this.padTokenId = ids.pad_token;
    this.addBos = files.addBos;
    this.addEos = files.addEos;
    this.config = files.config;
    this.chatTemplate = files.chatTemplate;
    this.deadline = files.regexes.length > 0 ? new Deadline(hf, files.file, files.regexes) : undefined;
    this.file = files.file;
  }

  /** Loads tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) from a model directory. */
  static fromDirectory(dir: string, options: TokenizerOptions = {}): Tokenizer {
    const files = readTokenizerFiles(dir, options.vocabSize);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(files.json, files.config);
    } catch (e) {
      throw new UserError(`${files.file}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    return new Tokenizer(hf, files, hf.get_vocab(true).size);
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, "tokenizer.json"));
  }

  /** Text → ids; with `specialTokens` (the default) BOS/EOS are added as the model's config says. */
  encode(text: string, { specialTokens = true }: { specialTokens?: boolean } = {}): number[] {
    const explicit = this.addBos !== undefined || this.addEos !== undefined;
    if (!specialTokens || !explicit) return this.checked(this.encodeRaw(text, specialTokens));
    const ids = this.encodeRaw(text, false);
    if (this.addBos && this.bosTokenId !== undefined) ids.unshift(this.bosTokenId);
    if (this.addEos && this.eosTokenId !== undefined) ids.push(this.eosTokenId);
    return this.checked(ids);
  }

  private encodeRaw(text: string, addSpecialTokens: boolean): number[] {
    const options = { add_special_tokens: addSpecialTokens };
    return this.deadline
      ? this.deadline.run<{ ids: number[] }>("encode", text, text.length, options).ids
      : this.hf.encode(text, options).ids;
  }

  /** A piece with no token (and no unk_token to stand for it) comes back from the library as no id at all: say so. */
  private checked(ids: number[]): number[] {
    const missing = ids.findIndex((id) => id === undefined);
    if (missing >= 0) {
      throw new UserError(
        `${this.file}: model.unk_token: expected a token for text pieces that are not in model.vocab, got nothing (token ${missing + 1} of the text has no id)`,
      );
    }
    return ids;
  }

  /** Ids → text; no ids is the empty text. */
  decode(ids: number[], { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return "";
    const options = { skip_special_tokens: skipSpecialTokens };
    // A decoded token is rarely longer than 16 characters: the deadline's length estimate.
    return this.deadline ? this.deadline.run<string>("decode", ids, 16 * ids.length, options) : this.hf.decode(ids, options);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }
}
