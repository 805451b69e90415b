/**
 * Mutations of a real model directory, adapter and data file. Each says what loralab must do with the result:
 * "reject" (a user error; accepting it would be a silently wrong number or a changed model), or "either" (a valid
 * input may come out: then the evaluation must succeed with finite numbers, or fail with a user error).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Random } from "../../src/core/random.js";
import { parseSafetensors, serializeSafetensors, tensorEntry, tensorNames, type SafetensorsFile } from "./files.js";

export type Expect = "reject" | "either";

export interface CaseFiles {
  model: string;
  adapter: string;
  data: string;
}

export interface Mutation {
  /** Which input it changes: "model", "adapter" (the adapter is loaded only for these) or "data". */
  target: "model" | "adapter" | "data";
  name: string;
  /** Changes the files in place; returns what it did, for the report, and what loralab must do. */
  apply(files: CaseFiles, random: Random): { what: string; expect: Expect; file: string };
}

const pick = <T>(random: Random, items: readonly T[]): T => items[random.int(items.length)]!;

function editJson(file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

function editSafetensors(file: string, edit: (f: SafetensorsFile) => void): void {
  const parsed = parseSafetensors(fs.readFileSync(file));
  edit(parsed);
  fs.writeFileSync(file, serializeSafetensors(parsed));
}

/** Values of the wrong JSON type for a field that wants a number, and invalid numbers. */
const NOT_A_SIZE: unknown[] = ["128", true, null, [128], { n: 128 }, -4, 0, 2.5, Number.MAX_SAFE_INTEGER * 8];

const REQUIRED_SIZES = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"];

/** A non-finite value in F16 (tiny-moby) or F32 (adapters) storage. */
function poison(data: Buffer, offset: number, dtype: string, random: Random): string {
  const kind = pick(random, ["NaN", "+Inf", "-Inf"]);
  if (dtype === "F16") data.writeUInt16LE(kind === "NaN" ? 0x7e00 : kind === "+Inf" ? 0x7c00 : 0xfc00, offset);
  else data.writeFloatLE(kind === "NaN" ? NaN : kind === "+Inf" ? Infinity : -Infinity, offset);
  return kind;
}

function truncate(file: string, random: Random): string {
  const bytes = fs.readFileSync(file);
  const at = 1 + random.int(bytes.length - 1);
  fs.writeFileSync(file, bytes.subarray(0, at));
  return `cut to ${at} of ${bytes.length} bytes`;
}

/** Mutations of a safetensors file (the model's or the adapter's). */
function safetensorsMutations(target: "model" | "adapter", fileName: string): Mutation[] {
  const at = (files: CaseFiles) => path.join(files[target], fileName);
  const m = (name: string, apply: (file: string, random: Random) => [string, Expect]): Mutation => ({
    target,
    name: `${fileName}: ${name}`,
    apply(files, random) {
      const file = at(files);
      const [what, expect] = apply(file, random);
      return { what: `${fileName}: ${what}`, expect, file };
    },
  });
  return [
    m("truncated", (file, r) => [truncate(file, r), "reject"]),
    m("header length", (file, r) => {
      const bytes = fs.readFileSync(file);
      const n = pick(r, [0, 1, 7, Number(bytes.readBigUInt64LE(0)) - 1, bytes.length, 2 ** 40]);
      bytes.writeBigUInt64LE(BigInt(n), 0);
      fs.writeFileSync(file, bytes);
      return [`header length set to ${n}`, "reject"];
    }),
    m("header byte", (file, r) => {
      const bytes = fs.readFileSync(file);
      const n = Number(bytes.readBigUInt64LE(0));
      const i = 8 + r.int(n);
      const c = pick(r, [...'{}[]":,0123456789abcdefFIU_ \\']);
      const was = String.fromCharCode(bytes[i]!);
      bytes[i] = c.charCodeAt(0);
      fs.writeFileSync(file, bytes);
      return [`header byte ${i} ${JSON.stringify(was)} → ${JSON.stringify(c)}`, "either"];
    }),
    m("non-finite value", (file, r) => {
      let what = "";
      editSafetensors(file, (f) => {
        const name = pick(r, tensorNames(f));
        const e = tensorEntry(f, name);
        const size = e.dtype === "F16" ? 2 : 4;
        const count = (e.data_offsets[1] - e.data_offsets[0]) / size;
        const index = r.int(count);
        what = `${name}[${index}] = ${poison(f.data, e.data_offsets[0] + index * size, e.dtype, r)}`;
      });
      return [what, "reject"];
    }),
    m("data bytes", (file, r) => {
      let what = "";
      editSafetensors(file, (f) => {
        const i = r.int(f.data.length);
        const was = f.data[i]!;
        f.data[i] = r.int(256);
        what = `data byte ${i}: ${was} → ${f.data[i]}`;
      });
      return [what, "either"];
    }),
    m("dtype", (file, r) => {
      let what = "";
      let expect: Expect = "reject";
      editSafetensors(file, (f) => {
        const name = pick(r, tensorNames(f));
        const e = tensorEntry(f, name);
        const to = pick(r, ["I16", "U16", "I32", "BOOL", "U8", "F64", "BF16", "F32", "F16", "Q4"]);
        // The same width reread as another float format is a valid (different) file; integers and wrong widths are not.
        if ((e.dtype === "F16" && to === "BF16") || (e.dtype === "BF16" && to === "F16") || to === e.dtype) expect = "either";
        what = `${name}: dtype ${e.dtype} → ${to}`;
        e.dtype = to;
      });
      return [what, expect];
    }),
    m("renamed tensor", (file, r) => {
      let what = "";
      editSafetensors(file, (f) => {
        const name = pick(r, tensorNames(f));
        const to = pick(r, [
          `${name}.extra`,
          name.replace(/weight$/, "bias"),
          "base_model.model.model.norm.weight",
          "model.norm.weight",
          name.replace(/\.\d+\./, ".99."),
        ]);
        if (to === name || f.header[to]) return;
        f.header[to] = f.header[name]!;
        delete f.header[name];
        what = `${name} renamed ${to}`;
      });
      return [what || "no rename possible", what ? "reject" : "either"];
    }),
    m("shape", (file, r) => {
      let what = "";
      editSafetensors(file, (f) => {
        const name = pick(r, tensorNames(f));
        const e = tensorEntry(f, name);
        const before = JSON.stringify(e.shape);
        e.shape =
          e.shape.length === 2 && e.shape[0] !== e.shape[1] && r.next() < 0.5 ? [e.shape[1]!, e.shape[0]!] : e.shape.map((d) => d + 1);
        what = `${name}: shape ${before} → ${JSON.stringify(e.shape)}`;
      });
      return [what, "reject"];
    }),
    m("dropped tensor", (file, r) => {
      let what = "";
      editSafetensors(file, (f) => {
        const names = tensorNames(f);
        const name = pick(r, names);
        const e = tensorEntry(f, name);
        delete f.header[name];
        // Keep the rest valid: cut the dropped tensor's bytes out and shift later offsets.
        const [start, end] = e.data_offsets;
        f.data = Buffer.concat([f.data.subarray(0, start), f.data.subarray(end)]);
        for (const other of tensorNames(f)) {
          const o = tensorEntry(f, other);
          if (o.data_offsets[0] >= end) o.data_offsets = [o.data_offsets[0] - (end - start), o.data_offsets[1] - (end - start)];
        }
        what = `${name} dropped`;
      });
      return [what, "reject"];
    }),
    m("BOM", (file) => {
      fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fs.readFileSync(file)]));
      return ["a UTF-8 BOM before the header length", "reject"];
    }),
  ];
}

/** Mutations of one JSON file of a directory: a field set to each of `values`, deleted, or the file broken. */
function jsonMutation(
  target: "model" | "adapter",
  fileName: string,
  name: string,
  apply: (json: Record<string, unknown>, random: Random) => [string, Expect],
): Mutation {
  return {
    target,
    name: `${fileName}: ${name}`,
    apply(files, random) {
      const file = path.join(files[target], fileName);
      let out: [string, Expect] = ["", "either"];
      editJson(file, (json) => (out = apply(json, random)));
      return { what: `${fileName}: ${out[0]}`, expect: out[1], file };
    },
  };
}

function brokenJson(target: "model" | "adapter", fileName: string): Mutation {
  return {
    target,
    name: `${fileName}: not JSON`,
    apply(files, random) {
      const file = path.join(files[target], fileName);
      const what = truncate(file, random);
      return { what: `${fileName}: ${what}`, expect: "reject", file };
    },
  };
}

const configMutations: Mutation[] = [
  brokenJson("model", "config.json"),
  jsonMutation("model", "config.json", "size of the wrong type", (j, r) => {
    const field = pick(r, [...REQUIRED_SIZES, "num_key_value_heads", "max_position_embeddings", "head_dim"]);
    const value = pick(r, NOT_A_SIZE);
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("model", "config.json", "another size", (j, r) => {
    const field = pick(r, REQUIRED_SIZES);
    const value = (j[field] as number) * pick(r, [2, 3]);
    j[field] = value;
    return [`${field} = ${value} (the weights have other shapes)`, "reject"];
  }),
  jsonMutation("model", "config.json", "absurd size", (j, r) => {
    const field = pick(r, ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"]);
    const value = pick(r, [2 ** 31, 10 ** 9, 2 ** 40]);
    j[field] = value;
    return [`${field} = ${value}`, "reject"];
  }),
  jsonMutation("model", "config.json", "required field missing", (j, r) => {
    const field = pick(r, [...REQUIRED_SIZES, "model_type"]);
    delete j[field];
    return [`${field} deleted`, "reject"];
  }),
  jsonMutation("model", "config.json", "optional field missing", (j, r) => {
    const field = pick(r, ["head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta", "bos_token_id", "hidden_act"]);
    delete j[field];
    return [`${field} deleted (a default applies)`, "either"];
  }),
  jsonMutation("model", "config.json", "wrong float", (j, r) => {
    const field = pick(r, ["rms_norm_eps", "rope_theta"]);
    const value = pick(r, ["1e-5", -1, 0, null, true]);
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, value === null ? "either" : "reject"];
  }),
  jsonMutation("model", "config.json", "unsupported", (j, r) => {
    const [field, value] = pick(r, [
      ["quantization_config", { load_in_4bit: true, quant_method: "bitsandbytes" }],
      ["model_type", pick(r, ["llama4", "bert", "", 3])],
      ["rope_scaling", { type: "yarn", factor: 4 }],
      ["pretraining_tp", 2],
      ["hidden_act", "gelu"],
      ["tie_word_embeddings", "yes"],
    ] as [string, unknown][]);
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("model", "config.json", "unknown field", (j, r) => {
    j[`x_${r.int(1000)}`] = pick(r, [1, "a", null, [1], { a: 1 }]);
    return ["an unknown field (transformers ignores those)", "either"];
  }),
];

const tokenizerMutations: Mutation[] = [
  brokenJson("model", "tokenizer.json"),
  brokenJson("model", "tokenizer_config.json"),
  jsonMutation("model", "tokenizer_config.json", "flag of the wrong type", (j, r) => {
    const field = pick(r, ["add_bos_token", "add_eos_token"]);
    const value = pick(r, ["yes", "true", 1, [true]]);
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("model", "tokenizer_config.json", "unknown special token", (j, r) => {
    const field = pick(r, ["bos_token", "eos_token", "pad_token"]);
    const value = pick(r, ["<|begin_of_text|>", "<BOS>", "[CLS]", "", 5]);
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("model", "tokenizer.json", "unknown model type", (j, r) => {
    const value = pick(r, ["BPE2", "SentencePiece", "", 1]);
    (j.model as Record<string, unknown>).type = value;
    return [`model.type = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("model", "tokenizer.json", "empty vocabulary", (j) => {
    const model = j.model as Record<string, unknown>;
    model.vocab = {};
    model.merges = [];
    j.added_tokens = [];
    return ["model.vocab = {} (and no merges or added tokens)", "reject"];
  }),
  jsonMutation("model", "tokenizer.json", "added token beyond the vocabulary", (j, r) => {
    const id = pick(r, [1024, 5000, 2 ** 20]);
    (j.added_tokens as Record<string, unknown>[]).push({
      id,
      content: "<extra>",
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    });
    return [`added_tokens: id ${id} (config.json's vocab_size is 1024)`, "reject"];
  }),
];

const adapterConfigMutations: Mutation[] = [
  brokenJson("adapter", "adapter_config.json"),
  jsonMutation("adapter", "adapter_config.json", "field of the wrong type", (j, r) => {
    const [field, value] = pick(r, [
      ["r", pick(r, ["8", 0, -1, 2.5, null])],
      ["lora_alpha", pick(r, ["16", -1, [16]])],
      ["use_rslora", pick(r, ["false", 0, "no"])],
      ["use_dora", pick(r, ["true", 1])],
      ["lora_dropout", pick(r, [1.5, -0.1, "0.1"])],
      ["target_modules", pick(r, ["([", 5, [5], [""]])],
      ["init_lora_weights", pick(r, ["pissa_foo", "xavier", 3])],
      ["bias", pick(r, ["some", true])],
      ["modules_to_save", pick(r, [["nonexistent_head"], "lm_head", [3]])],
      ["peft_type", pick(r, ["PREFIX_TUNING", "lora", 1])],
      ["layers_to_transform", pick(r, [[-1], "0", [0.5]])],
    ] as [string, unknown][]);
    // A null r falls back to PEFT's default (8), which is the adapter's rank here: a valid file.
    if (field === "r" && value === null) {
      j.r = null;
      return ["r = null", "either"];
    }
    j[field] = value;
    return [`${field} = ${JSON.stringify(value)}`, "reject"];
  }),
  jsonMutation("adapter", "adapter_config.json", "another rank", (j, r) => {
    j.r = pick(r, [4, 16]);
    return [`r = ${j.r} (the tensors have rank 8)`, "reject"];
  }),
  jsonMutation("adapter", "adapter_config.json", "DoRA without magnitudes", (j) => {
    j.use_dora = true;
    return ["use_dora = true (the file has no magnitude vectors)", "reject"];
  }),
];

const dataMutations: Mutation[] = (
  [
    ["a line that is not JSON", (rows: string[], r: Random) => [(rows[r.int(rows.length)] = '{"text": oops}'), "reject"]],
    [
      "text of the wrong type",
      (rows: string[], r: Random) => [
        (rows[r.int(rows.length)] = JSON.stringify({ text: pick(r, [5, null, ["a"], { a: 1 }, true]) })),
        "reject",
      ],
    ],
    [
      "ids outside the vocabulary",
      (rows: string[], r: Random) => [
        (rows[r.int(rows.length)] = JSON.stringify({ input_ids: [0, pick(r, [1024, 99999, -1, 2.5, "3"])] })),
        "reject",
      ],
    ],
    ["empty file", (rows: string[]) => [(rows.length = 0), "reject"]],
    ["one token per row", (rows: string[]) => [rows.splice(0, rows.length, '{"input_ids": [5]}', '{"input_ids": [9]}'), "reject"]],
    ["an empty text", (rows: string[], r: Random) => [(rows[r.int(rows.length)] = '{"text": ""}'), "reject"]],
    ["prompt without completion", (rows: string[], r: Random) => [(rows[r.int(rows.length)] = '{"prompt": "Ahab"}'), "reject"]],
    [
      "an object-property key",
      (rows: string[], r: Random) => [
        (rows[r.int(rows.length)] = `{"${pick(r, ["__proto__", "constructor"])}": {"text": 1}, "text": "fine"}`),
        "either",
      ],
    ],
    ["an unknown extra field", (rows: string[], r: Random) => [(rows[r.int(rows.length)] = '{"text": "fine", "label": 3}'), "either"]],
    ["a blank line", (rows: string[], r: Random) => [rows.splice(r.int(rows.length), 0, ""), "either"]],
  ] as [string, (rows: string[], random: Random) => [unknown, Expect]][]
).map(([name, edit]): Mutation => ({
  target: "data",
  name: `data.jsonl: ${name}`,
  apply(files, random) {
    const rows = fs.readFileSync(files.data, "utf8").split("\n").filter(Boolean);
    const [, expect] = edit(rows, random);
    fs.writeFileSync(files.data, rows.length ? rows.join("\n") + "\n" : "");
    return { what: `data.jsonl: ${name}`, expect, file: files.data };
  },
}));

const bytesMutations: Mutation[] = [
  {
    target: "data",
    name: "data.jsonl: invalid UTF-8",
    apply(files, random) {
      const bytes = fs.readFileSync(files.data);
      // The first character of the first row's text value: {"text": "Call…
      const at = bytes.indexOf('"', bytes.indexOf('"text"') + 6) + 1;
      bytes[at] = pick(random, [0xff, 0xc3, 0x80]);
      fs.writeFileSync(files.data, bytes);
      return { what: "data.jsonl: a byte that is not UTF-8 inside a text", expect: "reject", file: files.data };
    },
  },
];

export const MUTATIONS: Mutation[] = [
  ...safetensorsMutations("model", "model.safetensors"),
  ...configMutations,
  ...tokenizerMutations,
  ...safetensorsMutations("adapter", "adapter_model.safetensors"),
  ...adapterConfigMutations,
  ...dataMutations,
  ...bytesMutations,
];
