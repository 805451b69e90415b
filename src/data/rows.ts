/**
 * Dataset rows turned into token sequences, with errors that say `file:line: field: problem`.
 *
 * A row is one of (checked in this order, so the first field family present decides):
 *  - `{"input_ids": [...], "labels"?: [...]}`  used as is (labels: same length, -100 = not scored);
 *  - `{"messages": [{"role", "content"}, ...]}` rendered with the tokenizer's chat_template, loss on assistant turns;
 *  - `{"prompt": "...", "completion": "..."}`  loss on the completion (and the EOS appended after it);
 *  - `{"text": "..."}`                        loss on every token.
 * In CSV/TSV cells (always strings) "input_ids"/"labels" may be a JSON array or space/comma-separated
 * integers, and "messages" a JSON array.
 */
import { Template } from "@huggingface/jinja";
import { UserError } from "../core/errors.js";
import type { Tokenizer } from "../models/tokenizer.js";
import type { Example } from "./batch.js";
import type { JsonlRow } from "./jsonl.js";
import { isIllFormed } from "./text-file.js";

/** The label of a token the loss ignores (the same value as IGNORE_INDEX in loss.ts, kept here so data code needs no tfjs). */
export const IGNORED = -100;

export const CHAT_ROLES = ["system", "user", "assistant", "tool"] as const;

export type RowFormat = "input_ids" | "messages" | "prompt_completion" | "text";

export interface ConvertOptions {
  tokenizer: Tokenizer | undefined;
  /** Ids must lie in 0…vocabSize−1 (the model's embedding size). */
  vocabSize: number;
  /** Keep the first maxLength tokens of ids and labels alike (the start is kept, the end dropped). */
  maxLength?: number;
}

export interface RowContext extends ConvertOptions {
  file: string;
}

type RowValue = Readonly<Record<string, unknown>>;

/** Which field family a row uses, or undefined when it has none of them. */
export function rowFormat(value: RowValue): RowFormat | undefined {
  if ("input_ids" in value) return "input_ids";
  if ("messages" in value) return "messages";
  if ("prompt" in value || "completion" in value) return "prompt_completion";
  if ("text" in value) return "text";
  return undefined;
}

/** A JSONL row → Example (the CLI's entry point; errors say `file:line: …`). */
export function rowToExample(ctx: RowContext, row: JsonlRow): Example {
  const source = `${ctx.file}:${row.line}`;
  return { ...convertRow(row.value, source, ctx), source };
}

/** Any row → Example; `where` (e.g. "data.csv:7") prefixes every error message. */
export function convertRow(value: RowValue, where: string, opts: ConvertOptions): Example {
  const fail = (what: string): never => {
    throw new UserError(`${where}: ${what}`);
  };
  const format = rowFormat(value);
  let example: Example;
  let masked = true; // does the example carry a loss mask that truncation could empty?
  switch (format) {
    case "input_ids": {
      const inputIds = idsField(value, "input_ids", opts.vocabSize, fail, false);
      if (!("labels" in value)) {
        example = { inputIds };
        masked = false;
        break;
      }
      const labels = idsField(value, "labels", opts.vocabSize, fail, true);
      if (labels.length !== inputIds.length) fail(`"labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`);
      example = { inputIds, labels };
      break;
    }
    case "messages":
      example = chatExample(value, needTokenizer(opts, "messages", fail), fail);
      break;
    case "prompt_completion": {
      const prompt = textField(value, "prompt", fail);
      const completion = textField(value, "completion", fail);
      example = promptCompletionExample(prompt, completion, needTokenizer(opts, "prompt", fail));
      break;
    }
    case "text": {
      const text = textField(value, "text", fail);
      example = { inputIds: needTokenizer(opts, "text", fail).encode(text) };
      masked = false;
      break;
    }
    default:
      return fail(
        `expected a "text", "prompt"+"completion", "messages" or "input_ids" field, found ${
          Object.keys(value)
            .map((k) => `"${k}"`)
            .join(", ") || "no fields"
        }`,
      );
  }
  if (format !== "input_ids") checkVocab(example.inputIds, opts.vocabSize, fail);
  if (example.inputIds.length === 0) fail("encodes to no tokens");
  const full = example.inputIds.length;
  if (opts.maxLength !== undefined && full > opts.maxLength) {
    example = {
      inputIds: example.inputIds.slice(0, opts.maxLength),
      ...(example.labels ? { labels: example.labels.slice(0, opts.maxLength) } : {}),
    };
  }
  // The loss shifts by one (token t predicts t+1), so labels[0] never counts.
  if (masked && example.labels && !example.labels.some((l, t) => t > 0 && l !== IGNORED)) {
    fail(
      example.inputIds.length < full
        ? `no token is scored after truncation to maxLength ${opts.maxLength} (the row is ${full} tokens; the scored part starts later) — raise maxLength or shorten the prompt`
        : "no token is scored (every label is -100)",
    );
  }
  return example;
}

function needTokenizer(opts: ConvertOptions, field: string, fail: (what: string) => never): Tokenizer {
  if (!opts.tokenizer) fail(`"${field}" needs a tokenizer, but the model directory has no tokenizer.json (use "input_ids")`);
  return opts.tokenizer;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function textField(value: RowValue, field: string, fail: (what: string) => never): string {
  const v = value[field];
  if (v === undefined) fail(`"${field}" is missing`);
  if (typeof v !== "string") fail(`"${field}" must be a string, got ${describe(v)}`);
  if (v.trim() === "") fail(`"${field}" is empty`);
  if (isIllFormed(v)) fail(`"${field}" is not valid Unicode (it holds a lone UTF-16 surrogate, so it has no UTF-8 form)`);
  return v;
}

/** An array of integer ids; in CSV cells also a JSON array or "1 2 3" / "1,2,3". `labels` may hold -100. */
function idsField(value: RowValue, field: string, vocabSize: number, fail: (what: string) => never, isLabels: boolean): number[] {
  let v = value[field];
  if (typeof v === "string") {
    const s = v.trim();
    if (s.startsWith("[")) {
      try {
        v = JSON.parse(s);
      } catch {
        fail(`"${field}" is not a valid JSON array`);
      }
    } else v = s === "" ? [] : s.split(/[\s,]+/).map((x) => (/^-?\d+$/.test(x) ? Number(x) : x));
  }
  if (!Array.isArray(v) || v.length === 0) fail(`"${field}" must be a non-empty array of token ids, got ${describe(v)}`);
  v.forEach((id: unknown, i: number) => {
    if (typeof id !== "number" || !Number.isInteger(id)) fail(`"${field}"[${i}] = ${describe(id)} is not an integer token id`);
    if (isLabels && id === IGNORED) return;
    if (id < 0 || id >= vocabSize)
      fail(`"${field}"[${i}] = ${id} is outside the vocabulary (0…${vocabSize - 1}${isLabels ? ", or -100 for not scored" : ""})`);
  });
  return v as number[];
}

function checkVocab(ids: number[], vocabSize: number, fail: (what: string) => never): void {
  const bad = ids.findIndex((id) => id < 0 || id >= vocabSize);
  if (bad >= 0) fail(`the tokenizer produced id ${ids[bad]} (token ${bad}), outside the model's vocabulary (0…${vocabSize - 1})`);
}

/** Length of the longest common prefix of two id sequences. */
function commonPrefix(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * TRL's SFTTrainer prompt-completion recipe: tokenize `prompt` and `prompt + completion` (special tokens as the
 * tokenizer config says), append EOS when the tokenizer has one, and score everything after the part the two
 * tokenizations share. Tokenizing the joint string (rather than the completion on its own) avoids the extra
 * "▁" that sentencepiece/Llama tokenizers put at the start of every separately encoded string; a token that
 * straddles the prompt/completion boundary counts as completion.
 */
export function promptCompletionExample(prompt: string, completion: string, tokenizer: Tokenizer): Example {
  const promptIds = tokenizer.encode(prompt);
  const inputIds = tokenizer.encode(prompt + completion);
  const eos = tokenizer.eosTokenId;
  if (eos !== undefined && inputIds[inputIds.length - 1] !== eos) inputIds.push(eos);
  const boundary = commonPrefix(promptIds, inputIds);
  return { inputIds, labels: inputIds.map((id, t) => (t < boundary ? IGNORED : id)) };
}

function specialToken(config: Record<string, unknown>, field: string): string {
  const v = config[field];
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Record<string, unknown>).content === "string")
    return (v as Record<string, unknown>).content as string;
  return "";
}

const templates = new WeakMap<Tokenizer, Template | Error>();

function chatTemplate(tokenizer: Tokenizer, fail: (what: string) => never): Template {
  let t = templates.get(tokenizer);
  if (t === undefined) {
    const source = tokenizer.chatTemplate;
    if (source === undefined) {
      fail(
        `"messages" rows need a chat template, but the tokenizer has none (tokenizer_config.json has no "chat_template"); ` +
          `add one there, or write the rows as "prompt"/"completion" or "text"`,
      );
    }
    try {
      t = new Template(source);
    } catch (e) {
      t = e as Error;
    }
    templates.set(tokenizer, t);
  }
  if (t instanceof Error) fail(`the tokenizer's chat_template does not parse: ${t.message}`);
  return t;
}

function chatMessages(value: RowValue, fail: (what: string) => never): Record<string, unknown>[] {
  let v = value.messages;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      fail(`"messages" is not a valid JSON array`);
    }
  }
  if (!Array.isArray(v) || v.length === 0) fail(`"messages" must be a non-empty array of {"role", "content"} objects, got ${describe(v)}`);
  v.forEach((m: unknown, i: number) => {
    if (typeof m !== "object" || m === null || Array.isArray(m))
      fail(`"messages"[${i}] must be an object with "role" and "content", got ${describe(m)}`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string") fail(`"messages"[${i}].role must be a string, got ${describe(role)}`);
    if (!(CHAT_ROLES as readonly string[]).includes(role))
      fail(`"messages"[${i}].role "${role}" is unknown; expected one of ${CHAT_ROLES.join(", ")}`);
    if (content === undefined) fail(`"messages"[${i}].content is missing`);
    if (typeof content !== "string") fail(`"messages"[${i}].content must be a string, got ${describe(content)}`);
    if (content.trim() === "") fail(`"messages"[${i}].content is empty`);
    if (isIllFormed(content)) fail(`"messages"[${i}].content is not valid Unicode (it holds a lone UTF-16 surrogate)`);
  });
  if (!v.some((m) => (m as Record<string, unknown>).role === "assistant"))
    fail(`"messages" has no "assistant" message, so nothing would be scored`);
  return v as Record<string, unknown>[];
}

/**
 * Renders the conversation with the chat template (as transformers' apply_chat_template: the text is then
 * tokenized without adding special tokens — the template writes them) and scores only assistant turns. Each
 * assistant turn i spans from the end of render(messages[:i], add_generation_prompt=true) to the end of
 * render(messages[:i+1]); both must be prefixes of the whole rendering. Whatever the template writes after
 * the content inside that span (e.g. "<|im_end|>" or EOS) is scored too, so the model learns to stop.
 */
function chatExample(value: RowValue, tokenizer: Tokenizer, fail: (what: string) => never): Example {
  const messages = chatMessages(value, fail);
  const template = chatTemplate(tokenizer, fail);
  const cfg = tokenizer.config;
  const vars = {
    bos_token: specialToken(cfg, "bos_token"),
    eos_token: specialToken(cfg, "eos_token"),
    unk_token: specialToken(cfg, "unk_token"),
    pad_token: specialToken(cfg, "pad_token"),
  };
  const render = (upTo: number, addGenerationPrompt: boolean): string => {
    try {
      return template.render({ ...vars, messages: messages.slice(0, upTo), add_generation_prompt: addGenerationPrompt });
    } catch (e) {
      return fail(`chat_template: ${(e as Error).message}`);
    }
  };
  const encode = (s: string) => tokenizer.encode(s, { specialTokens: false });
  const whole = render(messages.length, false);
  const inputIds = encode(whole);
  const labels = inputIds.map(() => IGNORED);
  messages.forEach((m, i) => {
    if (m.role !== "assistant") return;
    const before = render(i, true);
    const through = render(i + 1, false);
    if (!whole.startsWith(before) || !whole.startsWith(through)) {
      fail(
        `chat_template renders the conversation up to message ${i} differently from the start of the whole conversation, so the assistant turn cannot be located`,
      );
    }
    const start = commonPrefix(encode(before), inputIds);
    const end = commonPrefix(encode(through), inputIds);
    for (let t = start; t < end; t++) labels[t] = inputIds[t]!;
  });
  return { inputIds, labels };
}
