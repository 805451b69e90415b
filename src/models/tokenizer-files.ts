/**
 * The files of a Hugging Face tokenizer, validated like config.json before anything is built from them:
 * tokenizer.json (the model — BPE, Unigram or WordPiece — with its vocabulary, merges and added tokens) and
 * tokenizer_config.json / special_tokens_map.json (which special tokens to add, the chat template). A wrong type
 * or an id the model's embedding does not have is an error naming the file and the field, never a silently
 * dropped BOS or an id that reads past the embedding matrix.
 */
import * as path from "node:path";
import { boolean, check, type Check, Fields, invalid, nonNegativeInt, validate } from "../core/check.js";
import { readJsonObject, readOptionalJsonObject } from "../core/json-file.js";
import { UserError } from "../core/errors.js";

type Json = Record<string, unknown>;

/** The model types @huggingface/tokenizers implements. */
const MODEL_TYPES = ["BPE", "Unigram", "WordPiece"] as const;

/** Special tokens transformers reads from tokenizer_config.json (each a string or an AddedToken object). */
export const SPECIAL_TOKENS = ["bos_token", "eos_token", "pad_token", "unk_token"] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

/** A regex tokenizer.json asks to run on the text (pre-tokenizer splits, normalizer replacements). */
export interface TokenizerRegex {
  /** Where it is in tokenizer.json, e.g. "pre_tokenizer.pretokenizers[0].pattern.Regex". */
  field: string;
  source: string;
}

export interface TokenizerFiles {
  /** Path of tokenizer.json, as errors name it. */
  file: string;
  /** tokenizer.json, checked (added_tokens defaults to []). */
  json: Json;
  /** special_tokens_map.json overlaid with tokenizer_config.json, as transformers merges them. */
  config: Json;
  /** The file each config key came from. */
  configFile: ReadonlyMap<string, string>;
  addBos: boolean | undefined;
  addEos: boolean | undefined;
  /** The content of each special token given in the config files. */
  special: Partial<Record<SpecialToken, string>>;
  chatTemplate: string | undefined;
  regexes: TokenizerRegex[];
}

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const object = check<Json>("an object", isObject);
const list = check<unknown[]>("a list", Array.isArray);
const nonEmptyString = check<string>("a non-empty string", (v) => typeof v === "string" && v !== "");
/** A special token: a string, or an AddedToken object {"content": …} (null = none). */
const tokenSpec = check<string | { content: string }>(
  'a token string or {"content": "<token>"}',
  (v) => nonEmptyString.accepts(v) || (isObject(v) && nonEmptyString.accepts(v.content)),
);
const chatTemplates = check<string | { name: string; template: string }[]>(
  'a template string or a list of {"name", "template"}',
  (v) =>
    typeof v === "string" ||
    (Array.isArray(v) && v.every((t) => isObject(t) && typeof t.name === "string" && typeof t.template === "string")),
);

/** A token id the model can embed: below `vocabSize` when the model's size is known. */
function idBelow(vocabSize: number | undefined): Check<number> {
  if (vocabSize === undefined) return nonNegativeInt;
  return check(`a token id below the model's vocab_size (${vocabSize})`, (v) => nonNegativeInt.accepts(v) && (v as number) < vocabSize);
}

/** Reads and validates the tokenizer files of `dir`; `vocabSize` is the model's (config.json), when known. */
export function readTokenizerFiles(dir: string, vocabSize: number | undefined): TokenizerFiles {
  const file = path.join(dir, "tokenizer.json");
  const tokenizer = readJsonObject(file, `a model needs tokenizer.json to encode text; rows with "input_ids" need none`);
  const json = checkTokenizerJson(tokenizer, vocabSize);

  const configFile = new Map<string, string>();
  const config: Json = {};
  for (const name of ["special_tokens_map.json", "tokenizer_config.json"]) {
    const f = readOptionalJsonObject(path.join(dir, name));
    if (!f) continue;
    for (const [k, v] of Object.entries(f.raw)) {
      config[k] = v;
      configFile.set(k, f.where);
    }
  }
  const fieldsOf = (key: string) => new Fields(configFile.get(key) ?? path.join(dir, "tokenizer_config.json"), config);
  const flag = (key: string) => fieldsOf(key).optional(key, boolean, undefined);
  const special: Partial<Record<SpecialToken, string>> = {};
  for (const key of SPECIAL_TOKENS) {
    const spec = fieldsOf(key).optional(key, tokenSpec, undefined);
    if (spec !== undefined) special[key] = typeof spec === "string" ? spec : spec.content;
  }
  checkAddedTokensDecoder(fieldsOf("added_tokens_decoder"), idBelow(vocabSize));
  const template = fieldsOf("chat_template").optional("chat_template", chatTemplates, undefined);
  return {
    file,
    json,
    config,
    configFile,
    addBos: flag("add_bos_token"),
    addEos: flag("add_eos_token"),
    special,
    chatTemplate: typeof template === "string" ? template : template?.find((t) => t.name === "default")?.template,
    regexes: findRegexes(json),
  };
}

function checkTokenizerJson(f: Fields, vocabSize: number | undefined): Json {
  const id = idBelow(vocabSize);
  const model = f.required("model", object);
  const where = f.where;
  const type = model.type ?? inferredType(model);
  if (!(MODEL_TYPES as readonly unknown[]).includes(type)) {
    throw invalid(
      where,
      "model.type",
      `one of ${MODEL_TYPES.map((t) => `"${t}"`).join(", ")} (the types loralab's tokenizer library implements)`,
      type,
    );
  }
  if (type === "Unigram") {
    const vocab = validate(model.vocab, list, where, "model.vocab");
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number") {
        throw invalid(where, `model.vocab[${i}]`, "a [token, score] pair", entry);
      }
    });
    if (vocab.length === 0) throw invalid(where, "model.vocab", "a non-empty vocabulary", vocab);
    if (vocabSize !== undefined && vocab.length > vocabSize) {
      // A Unigram token's id is its index in the list.
      throw new UserError(`${where}: model.vocab: expected at most ${vocabSize} tokens (the model's vocab_size), got ${vocab.length}`);
    }
    if (model.unk_id !== undefined && model.unk_id !== null) {
      const unk = check<number>(
        `an index into model.vocab (0…${vocab.length - 1})`,
        (v) => nonNegativeInt.accepts(v) && (v as number) < vocab.length,
      );
      validate(model.unk_id, unk, where, "model.unk_id");
    }
  } else {
    const vocab = validate(model.vocab, object, where, "model.vocab");
    const entries = Object.entries(vocab);
    if (entries.length === 0) throw invalid(where, "model.vocab", "a non-empty vocabulary", vocab);
    for (const [token, value] of entries) validate(value, id, where, `model.vocab[${JSON.stringify(token)}]`);
    if (type === "BPE") {
      const merge = (m: unknown) => typeof m === "string" || (Array.isArray(m) && m.length === 2 && m.every((s) => typeof s === "string"));
      validate(
        model.merges ?? [],
        check('a list of merges ("a b" strings or [a, b] pairs)', (v) => Array.isArray(v) && v.every(merge)),
        where,
        "model.merges",
      );
    }
    if (model.unk_token !== undefined && model.unk_token !== null && !Object.hasOwn(vocab, model.unk_token as string)) {
      throw invalid(where, "model.unk_token", "a token of model.vocab", model.unk_token);
    }
  }
  const added = f.optional("added_tokens", list, []);
  added.forEach((t, i) => {
    if (!isObject(t)) throw invalid(where, `added_tokens[${i}]`, '{"id", "content"}', t);
    validate(t.id, id, where, `added_tokens[${i}].id`);
    validate(t.content, nonEmptyString, where, `added_tokens[${i}].content`);
  });
  return { ...f.raw, added_tokens: added };
}

/** What @huggingface/tokenizers guesses for a model without "type": an array vocabulary is Unigram, else BPE/WordPiece. */
function inferredType(model: Json): unknown {
  if (Array.isArray(model.vocab)) return "Unigram";
  if (Object.hasOwn(model, "merges")) return "BPE";
  if (Object.hasOwn(model, "continuing_subword_prefix")) return "WordPiece";
  return undefined;
}

/** transformers' `added_tokens_decoder`: {"<id>": {"content": …}} — ids the model must be able to embed. */
function checkAddedTokensDecoder(f: Fields, id: Check<number>): void {
  const decoder = f.optional("added_tokens_decoder", object, undefined);
  if (decoder === undefined) return;
  for (const [key, token] of Object.entries(decoder)) {
    const field = `added_tokens_decoder[${JSON.stringify(key)}]`;
    validate(/^\d+$/.test(key) ? Number(key) : key, id, f.where, `${field} (its id)`);
    if (!isObject(token)) throw invalid(f.where, field, '{"content": "<token>"}', token);
    validate(token.content, nonEmptyString, f.where, `${field}.content`);
  }
}

/** Every `{"Regex": …}` pattern in tokenizer.json, with its place (they are what can backtrack). */
function findRegexes(json: unknown, at = ""): TokenizerRegex[] {
  if (Array.isArray(json)) return json.flatMap((v, i) => findRegexes(v, `${at}[${i}]`));
  if (!isObject(json)) return [];
  const out: TokenizerRegex[] = [];
  for (const [k, v] of Object.entries(json)) {
    const field = at === "" ? k : `${at}.${k}`;
    if (k === "Regex" && typeof v === "string") out.push({ field, source: v });
    else if (k !== "model" && k !== "added_tokens") out.push(...findRegexes(v, field));
  }
  return out;
}

/** A special token the config names must be a token of the vocabulary (else transformers would add a new id). */
export function checkSpecialTokens(
  files: TokenizerFiles,
  tokenToId: (token: string) => number | undefined,
): Partial<Record<SpecialToken, number>> {
  const ids: Partial<Record<SpecialToken, number>> = {};
  for (const key of SPECIAL_TOKENS) {
    const content = files.special[key];
    if (content === undefined) continue;
    const id = tokenToId(content);
    if (id === undefined)
      throw invalid(files.configFile.get(key) ?? "tokenizer_config.json", key, `a token of the vocabulary in ${files.file}`, content);
    ids[key] = id;
  }
  for (const [flag, key] of [
    ["add_bos_token", "bos_token"],
    ["add_eos_token", "eos_token"],
  ] as const) {
    if (files.config[flag] === true && ids[key] === undefined) {
      throw new UserError(`${files.configFile.get(flag)}: ${key}: expected a token of the vocabulary (${flag} is true), got nothing`);
    }
  }
  return ids;
}
