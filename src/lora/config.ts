/**
 * LoraConfig: PEFT's fields and defaults, camelCase in TypeScript, PEFT's snake_case on disk
 * (adapter_config.json), so adapters move between loralab and Python unchanged.
 *
 * Every field is one row of LORA_FIELDS; the type, the defaults, the validation, both directions of
 * adapter_config.json and the `--lora key=value` syntax all come from that table.
 */
import {
  boolean,
  type Check,
  check,
  describeValue,
  either,
  Fields,
  listOf,
  nonNegativeInt,
  nullable,
  numberIn,
  oneOf,
  positiveInt,
  positiveNumber,
  string,
  stringList,
  validate,
} from "../core/check.js";
import { UserError } from "../core/errors.js";
import type { ModelConfig } from "../models/config.js";

/** `T`, but not a place TypeScript infers `T` from (the check is; TypeScript 5.4's NoInfer, for older compilers too). */
type Exactly<T> = [T][T extends unknown ? 0 : never];

/** One LoraConfig field. `T` is its value, `Loose` a shorthand it also accepts, `Short` a short name. */
interface Field<T, Loose = never, Short extends string = never> {
  /** PEFT's key in adapter_config.json. */
  readonly json: string;
  readonly default: Exactly<T>;
  readonly check: Check<T>;
  /** A name the DSL and `--lora` accept besides the camelCase one (`alpha` for loraAlpha). */
  readonly short?: Short;
  /** A convenient shape turned into the field's own before the check (a layer index → a list of one). */
  readonly shorthand?: { readonly check: Check<Loose>; expand(value: Loose): Exactly<T> };
  /** Reads the value of `--lora key=value`; fields without it are not set on the command line. */
  readonly text?: (text: string) => unknown;
}

function field<T, Loose = never, const Short extends string = never>(spec: Field<T, Loose, Short>): Field<T, Loose, Short> {
  return spec;
}

const isRegex = (v: unknown): boolean => {
  if (typeof v !== "string") return false;
  try {
    new RegExp(v);
    return true;
  } catch {
    return false;
  }
};

const moduleNames = check<string[] | string | null>(
  'a list of module names, a regex or "all-linear"',
  (v) => v === null || stringList.accepts(v) || isRegex(v),
);

/** rank_pattern / alpha_pattern: module-name regex → value. */
function patterns(value: Check<number>): Check<Record<string, number>> {
  return check(
    `an object of module-name regex → ${value.expected.replace(/^an? /, "")}`,
    (v) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.entries(v).every(([k, x]) => isRegex(k) && value.accepts(x)),
  );
}

const asNumber = (t: string): unknown => (t.trim() !== "" && Number.isFinite(Number(t)) ? Number(t) : t);
const asBoolean = (t: string): unknown => (t === "true" ? true : t === "false" ? false : t);
const asList = (t: string): string[] => t.split("+");

export type LoraBias = "none" | "all" | "lora_only";

export const LORA_FIELDS = {
  /** Rank of the update BA. */
  r: field({ json: "r", default: 8, check: positiveInt, short: "r", text: asNumber }),
  /** Scaling numerator: the update is scaled by loraAlpha / r. */
  loraAlpha: field({ json: "lora_alpha", default: 8, check: positiveNumber, short: "alpha", text: asNumber }),
  /** Module-name suffixes, a regex matched against the full module name, or "all-linear"; null = the model type's default (q_proj, v_proj). */
  targetModules: field({
    json: "target_modules",
    default: null,
    check: moduleNames,
    short: "targets",
    text: (t) => (t === "all-linear" ? t : asList(t)),
  }),
  /** Modules never wrapped (names or a regex, as targetModules). */
  excludeModules: field({ json: "exclude_modules", default: null, check: moduleNames, text: asList }),
  loraDropout: field({ json: "lora_dropout", default: 0, check: numberIn(0, 1, { maxOpen: true }), short: "dropout", text: asNumber }),
  /** Which biases train and are saved with the adapter. */
  bias: field({ json: "bias", default: "none", check: oneOf("none", "all", "lora_only"), short: "bias", text: (t) => t }),
  /** Modules trained in full and saved with the adapter (e.g. ["lm_head"]). */
  modulesToSave: field({ json: "modules_to_save", default: null, check: nullable(stringList), text: asList }),
  /** Scale by loraAlpha / √r instead of loraAlpha / r (rsLoRA). */
  useRslora: field({ json: "use_rslora", default: false, check: boolean, short: "rslora", text: asBoolean }),
  /** true: A kaiming-uniform, B zeros (the update starts at 0); "gaussian": A ~ N(0, 1/r), B zeros; false: both random. */
  initLoraWeights: field({
    json: "init_lora_weights",
    default: true,
    check: either(boolean, oneOf("gaussian"), 'true, false or "gaussian"'),
    text: asBoolean,
  }),
  /** Only the layers with these indices get adapters. */
  layersToTransform: field({
    json: "layers_to_transform",
    default: null,
    check: nullable(listOf(nonNegativeInt, "a layer index or a list of them")),
    shorthand: { check: nonNegativeInt, expand: (n) => [n] },
    text: (t) => asList(t).map(asNumber),
  }),
  /** The container names whose numeric children are the layers layersToTransform counts. */
  layersPattern: field({
    json: "layers_pattern",
    default: null,
    check: nullable(stringList),
    shorthand: { check: string, expand: (s) => [s] },
    text: asList,
  }),
  /** Per-module rank overrides: key = regex matched against the end of the module name. */
  rankPattern: field({ json: "rank_pattern", default: {}, check: patterns(positiveInt) }),
  alphaPattern: field({ json: "alpha_pattern", default: {}, check: patterns(positiveNumber) }),
  /** Weight-decomposed LoRA (DoRA): a trained magnitude per output row. */
  useDora: field({ json: "use_dora", default: false, check: boolean, short: "dora", text: asBoolean }),
  /** Weights stored [in, out] (GPT-2's Conv1D); set automatically for such layers. */
  fanInFanOut: field({ json: "fan_in_fan_out", default: false, check: boolean }),
  baseModelNameOrPath: field({ json: "base_model_name_or_path", default: null, check: nullable(string) }),
};

type Table = typeof LORA_FIELDS;
type Name = keyof Table;
type ValueOf<F> = F extends Field<infer T, infer _L, infer _S> ? T : never;
type InputOf<F> = F extends Field<infer T, infer L, infer _S> ? T | L : never;
type ShortOf<F> = F extends Field<infer _T, infer _L, infer S> ? S : never;

export type LoraConfig = { [K in Name]: ValueOf<Table[K]> };

/** What users pass: every field optional, under its camelCase or its short name (`alpha`, `targets`, `dropout`, …). */
export type LoraConfigInput = { [K in Name]?: InputOf<Table[K]> } & { [K in Name as ShortOf<Table[K]>]?: InputOf<Table[K]> };

const ROWS = Object.entries(LORA_FIELDS) as [Name, Field<unknown, unknown, string>][];

export const LORA_DEFAULTS: Readonly<LoraConfig> = Object.freeze(
  Object.fromEntries(ROWS.map(([name, f]) => [name, f.default])) as LoraConfig,
);

/** Field by every name users may write it under (camelCase and short). */
const BY_KEY = new Map<string, Name>(ROWS.flatMap(([name, f]) => [[name, name] as const, ...(f.short ? [[f.short, name] as const] : [])]));
const KNOWN = ROWS.map(([name, f]) => (f.short && f.short !== name ? `${name} (${f.short})` : name)).join(", ");

/** The values given for some fields, each with the key it was given under (messages name what the user wrote). */
type Given = Map<Name, { key: string; value: unknown }>;

function build(given: Given, where: string): LoraConfig {
  const config = {} as Record<Name, unknown>;
  for (const [name, f] of ROWS) {
    const g = given.get(name);
    if (g === undefined) config[name] = structuredClone(f.default);
    else config[name] = validate(f.shorthand?.check.accepts(g.value) ? f.shorthand.expand(g.value) : g.value, f.check, where, g.key);
  }
  const c = config as LoraConfig;
  if (c.layersToTransform !== null && typeof c.targetModules === "string") {
    throw new UserError(
      `${where}: ${given.get("layersToTransform")!.key} cannot be combined with a regex ${given.get("targetModules")!.key} (as in PEFT): put the layer restriction into the regex`,
    );
  }
  return c;
}

/** Fills defaults and validates; `where` names the source in errors ("lora config", "--lora", a file…). */
export function resolveLoraConfig(input: LoraConfigInput | LoraConfig | number = {}, where = "lora config"): LoraConfig {
  const raw: unknown = typeof input === "number" ? { r: input } : input;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new UserError(`${where}: expected a rank or an object of LoRA options, got ${describeValue(raw)}`);
  const given: Given = new Map();
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    const name = BY_KEY.get(key);
    if (name === undefined) throw new UserError(`${where}: unknown option "${key}"; known: ${KNOWN}`);
    const earlier = given.get(name);
    if (earlier) throw new UserError(`${where}: ${earlier.key} and ${key} are one option; give one of them`);
    given.set(name, { key, value });
  }
  return build(given, where);
}

/** How an error about `name` calls it: PEFT's key when the config came from a file, else the camelCase name. */
export function fieldLabel(name: Name, fromFile: boolean): string {
  return fromFile ? LORA_FIELDS[name].json : name;
}

/** PEFT's per-architecture default targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export function defaultTargetModules(config: ModelConfig): string[] {
  return config.family === "gpt2" ? ["c_attn"] : ["q_proj", "v_proj"];
}

// ---- `--lora key=value,...` ----

const CLI_KEYS = ROWS.filter(([, f]) => f.text).map(([name, f]) => f.short ?? name);

/** `r=8,alpha=16,targets=q_proj+v_proj,dropout=0.05` → LoRA options (the DSL's keys; lists joined by "+"), validated. */
export function parseLoraSpec(spec: string, where = "--lora"): LoraConfigInput {
  const input: Record<string, unknown> = {};
  for (const part of spec
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0 || eq === part.length - 1) throw new UserError(`${where}: "${part}" is not key=value`);
    const key = part.slice(0, eq);
    const name = BY_KEY.get(key);
    const read = name && LORA_FIELDS[name].text;
    if (!read) throw new UserError(`${where}: unknown key "${key}"; known: ${CLI_KEYS.join(", ")}`);
    input[key] = read(part.slice(eq + 1));
  }
  resolveLoraConfig(input, where); // messages name --lora and the key as typed
  return input as LoraConfigInput;
}

// ---- adapter_config.json ----

/** Accepts exactly `values`: PEFT options loralab does not implement must keep their neutral value. */
const only = (...values: unknown[]): Check<unknown> =>
  check(`${values.map((v) => JSON.stringify(v)).join(" or ")} (loralab does not implement other values)`, (v) => values.includes(v));
const anything = check<unknown>("anything", () => true);

/** Keys of adapter_config.json outside LoraConfig: the value PEFT writes (if it writes the key) and what reading accepts. */
const PEFT_KEYS: Record<string, { write?: unknown; check: Check<unknown> }> = {
  peft_type: { write: "LORA", check: oneOf("LORA") },
  task_type: { write: "CAUSAL_LM", check: nullable(string) },
  inference_mode: { write: true, check: boolean },
  revision: { write: null, check: nullable(string) },
  auto_mapping: { write: null, check: anything },
  loftq_config: { write: {}, check: anything },
  megatron_core: { write: "megatron.core", check: nullable(string) },
  megatron_config: { write: null, check: only(null) },
  layer_replication: { write: null, check: only(null) },
  lora_bias: { write: false, check: only(false) },
  use_qalora: { check: only(false) },
  trainable_token_indices: { check: only(null) },
  target_parameters: { check: only(null) },
  alora_invocation_tokens: { check: only(null) },
  ensure_weight_tying: { check: only(false) },
};

/** adapter_config.json as PEFT writes it (keys sorted, as PEFT's save_pretrained does). */
export function toAdapterConfigJson(c: LoraConfig, targetModules: string[] | string): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(PEFT_KEYS)) if ("write" in spec) json[key] = structuredClone(spec.write);
  for (const [name, f] of ROWS) json[f.json] = c[name];
  json[LORA_FIELDS.targetModules.json] = targetModules;
  return Object.fromEntries(Object.entries(json).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Reads PEFT's adapter_config.json (already parsed); `file` names it in errors, with PEFT's key. */
export function fromAdapterConfigJson(json: unknown, file: string): LoraConfig {
  const { raw } = Fields.of(file, json);
  for (const [key, spec] of Object.entries(PEFT_KEYS)) if (Object.hasOwn(raw, key)) validate(raw[key], spec.check, file, key);
  const given: Given = new Map();
  for (const [name, f] of ROWS) if (Object.hasOwn(raw, f.json)) given.set(name, { key: f.json, value: raw[f.json] });
  return build(given, file);
}
