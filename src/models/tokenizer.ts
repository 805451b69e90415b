/**
 * A model's tokenizer: tokenizer.json through @huggingface/tokenizers, with BOS/EOS added the way
 * tokenizer_config.json says (add_bos_token / add_eos_token), as transformers does for Llama tokenizers.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { UserError } from "../core/errors.js";

type Json = Record<string, unknown>;

function readJson(file: string, required: boolean): Json | undefined {
  if (!fs.existsSync(file)) {
    if (required) throw new UserError(`${file}: not found (a model needs tokenizer.json to encode text; rows with "input_ids" need none)`);
    return undefined;
  }
  try {
    const raw = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("expected a JSON object");
    return raw as Json;
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

/** A special token in tokenizer_config.json is either a string or an AddedToken object with "content". */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content as string;
  return undefined;
}

export class Tokenizer {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** The config's add_bos_token / add_eos_token; undefined = leave it to tokenizer.json's post-processor. */
  private readonly addBos: boolean | undefined;
  private readonly addEos: boolean | undefined;

  private constructor(
    private readonly hf: HfTokenizer,
    readonly config: Json,
    readonly vocabSize: number,
  ) {
    const id = (field: string) => {
      const content = tokenContent(config[field]);
      return content === undefined ? undefined : hf.token_to_id(content);
    };
    this.bosTokenId = id("bos_token");
    this.eosTokenId = id("eos_token");
    this.padTokenId = id("pad_token");
    this.addBos = typeof config.add_bos_token === "boolean" ? config.add_bos_token : undefined;
    this.addEos = typeof config.add_eos_token === "boolean" ? config.add_eos_token : undefined;
  }

  /** Loads tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) from a model directory. */
  static fromDirectory(dir: string): Tokenizer {
    const tokenizerFile = path.join(dir, "tokenizer.json");
    const json = readJson(tokenizerFile, true)!;
    const config = {
      ...readJson(path.join(dir, "special_tokens_map.json"), false),
      ...readJson(path.join(dir, "tokenizer_config.json"), false),
    };
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(json, config);
    } catch (e) {
      throw new UserError(`${tokenizerFile}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    return new Tokenizer(hf, config, hf.get_vocab(true).size);
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, "tokenizer.json"));
  }

  /** Text → ids; with `specialTokens` (the default) BOS/EOS are added as the model's config says. */
  encode(text: string, { specialTokens = true }: { specialTokens?: boolean } = {}): number[] {
    const explicit = this.addBos !== undefined || this.addEos !== undefined;
    if (!specialTokens || !explicit) return this.hf.encode(text, { add_special_tokens: specialTokens }).ids;
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (this.addBos && this.bosTokenId !== undefined) ids.unshift(this.bosTokenId);
    if (this.addEos && this.eosTokenId !== undefined) ids.push(this.eosTokenId);
    return ids;
  }

  decode(ids: number[], { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The Jinja chat template, if the model ships one. */
  get chatTemplate(): string | undefined {
    return typeof this.config.chat_template === "string" ? this.config.chat_template : undefined;
  }
}
