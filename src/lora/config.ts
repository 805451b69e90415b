/**
 * LoraConfig: PEFT's fields and defaults, camelCase in TypeScript, PEFT's snake_case on disk
 * (adapter_config.json), so adapters move between loralab and Python unchanged.
 */
import { UserError } from "../core/errors.js";
import type { ModelConfig } from "../models/config.js";

export type LoraBias = "none" | "all" | "lora_only";

export interface LoraConfig {
  /** Rank of the update BA (default 8). */
  r: number;
  /** Scaling numerator: the update is scaled by loraAlpha / r (default 8). */
  loraAlpha: number;
  /** Module-name suffixes, a regex matched against the full module name, or "all-linear"; null = the model type's default (q_proj, v_proj). */
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  loraDropout: number;
  bias: LoraBias;
  /** Modules trained in full and saved with the adapter (e.g. ["lm_head"]). */
  modulesToSave: string[] | null;
  /** Scale by loraAlpha / √r instead of loraAlpha / r (rsLoRA). */
  useRslora: boolean;
  /** true: A kaiming-uniform, B zeros (the update starts at 0); "gaussian": A ~ N(0, 1/r), B zeros; false: both random. */
  initLoraWeights: boolean | "gaussian";
  layersToTransform: number[] | null;
  layersPattern: string[] | null;
  /** Per-module rank overrides: key = regex matched against the end of the module name. */
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  /** Weight-decomposed LoRA (DoRA): a trained magnitude per output row. */
  useDora: boolean;
  /** Weights stored [in, out] (GPT-2's Conv1D); set automatically for such layers. */
  fanInFanOut: boolean;
  baseModelNameOrPath: string | null;
}

/** What users pass: every field optional; `alpha`, `targets`, `dropout` accepted as short names. */
export type LoraConfigInput = Partial<LoraConfig> & {
  alpha?: number;
  targets?: string[] | string;
  dropout?: number;
};

export const LORA_DEFAULTS: LoraConfig = {
  r: 8,
  loraAlpha: 8,
  targetModules: null,
  excludeModules: null,
  loraDropout: 0,
  bias: "none",
  modulesToSave: null,
  useRslora: false,
  initLoraWeights: true,
  layersToTransform: null,
  layersPattern: null,
  rankPattern: {},
  alphaPattern: {},
  useDora: false,
  fanInFanOut: false,
  baseModelNameOrPath: null,
};

/** PEFT's per-architecture default targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export function defaultTargetModules(config: ModelConfig): string[] {
  return config.family === "gpt2" ? ["c_attn"] : ["q_proj", "v_proj"];
}

function check(ok: boolean, where: string, field: string, expected: string, got: unknown): void {
  if (!ok) throw new UserError(`${where}: "${field}": expected ${expected}, got ${JSON.stringify(got)}`);
}

const isPositiveInt = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v > 0;
const isStringList = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");

/** Fills defaults and validates; `where` names the source in errors ("lora config", a file path…). */
export function resolveLoraConfig(input: LoraConfigInput | number = {}, where = "lora config"): LoraConfig {
  const given = typeof input === "number" ? { r: input } : input;
  const { alpha, targets, dropout, ...rest } = given;
  const c: LoraConfig = {
    ...LORA_DEFAULTS,
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    ...(alpha !== undefined ? { loraAlpha: alpha } : {}),
    ...(targets !== undefined ? { targetModules: targets } : {}),
    ...(dropout !== undefined ? { loraDropout: dropout } : {}),
  };
  const unknown = Object.keys(rest).filter((k) => !(k in LORA_DEFAULTS));
  if (unknown.length)
    throw new UserError(
      `${where}: unknown option "${unknown[0]}"; known: ${[...Object.keys(LORA_DEFAULTS), "alpha", "targets", "dropout"].join(", ")}`,
    );
  check(isPositiveInt(c.r), where, "r", "a positive integer", c.r);
  check(
    typeof c.loraAlpha === "number" && Number.isFinite(c.loraAlpha) && c.loraAlpha > 0,
    where,
    "loraAlpha",
    "a positive number",
    c.loraAlpha,
  );
  check(
    typeof c.loraDropout === "number" && c.loraDropout >= 0 && c.loraDropout < 1,
    where,
    "loraDropout",
    "a number in [0, 1)",
    c.loraDropout,
  );
  check(["none", "all", "lora_only"].includes(c.bias), where, "bias", '"none", "all" or "lora_only"', c.bias);
  check(
    c.targetModules === null || typeof c.targetModules === "string" || isStringList(c.targetModules),
    where,
    "targetModules",
    'a list of module names, a regex string or "all-linear"',
    c.targetModules,
  );
  check(
    c.excludeModules === null || typeof c.excludeModules === "string" || isStringList(c.excludeModules),
    where,
    "excludeModules",
    "a list of module names or a regex string",
    c.excludeModules,
  );
  check(c.modulesToSave === null || isStringList(c.modulesToSave), where, "modulesToSave", "a list of module names", c.modulesToSave);
  check(
    [true, false, "gaussian"].includes(c.initLoraWeights as never),
    where,
    "initLoraWeights",
    'true, false or "gaussian"',
    c.initLoraWeights,
  );
  if (typeof c.layersToTransform === "number") c.layersToTransform = [c.layersToTransform];
  check(
    c.layersToTransform === null || (Array.isArray(c.layersToTransform) && c.layersToTransform.every((n) => Number.isInteger(n) && n >= 0)),
    where,
    "layersToTransform",
    "a layer index or a list of them",
    c.layersToTransform,
  );
  if (typeof c.layersPattern === "string") c.layersPattern = [c.layersPattern];
  check(
    c.layersPattern === null || isStringList(c.layersPattern),
    where,
    "layersPattern",
    "a string or a list of strings",
    c.layersPattern,
  );
  if (c.layersToTransform !== null && typeof c.targetModules === "string") {
    throw new UserError(
      `${where}: "layersToTransform" cannot be combined with a regex "targetModules" (as in PEFT): put the layer restriction into the regex`,
    );
  }
  for (const [field, pattern] of [
    ["rankPattern", c.rankPattern],
    ["alphaPattern", c.alphaPattern],
  ] as const) {
    check(
      typeof pattern === "object" && pattern !== null && Object.values(pattern).every((v) => typeof v === "number" && v > 0),
      where,
      field,
      "an object of module-name pattern → positive number",
      pattern,
    );
  }
  return c;
}

/** adapter_config.json as PEFT writes it. */
export function toAdapterConfigJson(c: LoraConfig, targetModules: string[] | string): Record<string, unknown> {
  return {
    alpha_pattern: c.alphaPattern,
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath,
    bias: c.bias,
    exclude_modules: c.excludeModules,
    fan_in_fan_out: c.fanInFanOut,
    inference_mode: true,
    init_lora_weights: c.initLoraWeights,
    layer_replication: null,
    layers_pattern: c.layersPattern,
    layers_to_transform: c.layersToTransform,
    loftq_config: {},
    lora_alpha: c.loraAlpha,
    lora_bias: false,
    lora_dropout: c.loraDropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: c.modulesToSave,
    peft_type: "LORA",
    r: c.r,
    rank_pattern: c.rankPattern,
    revision: null,
    target_modules: targetModules,
    task_type: "CAUSAL_LM",
    use_dora: c.useDora,
    use_rslora: c.useRslora,
  };
}

/** Fields PEFT may write whose non-default values change the computation in ways not implemented. */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  layer_replication: (v) => v === null || v === undefined,
  lora_bias: (v) => v === false || v === undefined,
  use_qalora: (v) => v === false || v === undefined,
  trainable_token_indices: (v) => v === null || v === undefined,
};

/** Reads PEFT's adapter_config.json (already parsed); `file` names it in errors. */
export function fromAdapterConfigJson(json: Record<string, unknown>, file: string): LoraConfig {
  if (json.peft_type !== undefined && json.peft_type !== "LORA") {
    throw new UserError(`${file}: "peft_type" is ${JSON.stringify(json.peft_type)}; loralab reads LoRA adapters ("LORA")`);
  }
  for (const [key, ok] of Object.entries(UNSUPPORTED)) {
    if (!ok(json[key])) throw new UserError(`${file}: "${key}" = ${JSON.stringify(json[key])} is not supported`);
  }
  const init = json.init_lora_weights;
  return resolveLoraConfig(
    {
      r: json.r as number | undefined,
      loraAlpha: json.lora_alpha as number | undefined,
      targetModules: (json.target_modules ?? null) as string[] | string | null,
      excludeModules: (json.exclude_modules ?? null) as string[] | string | null,
      loraDropout: (json.lora_dropout ?? 0) as number,
      bias: (json.bias ?? "none") as LoraBias,
      modulesToSave: (json.modules_to_save ?? null) as string[] | null,
      useRslora: Boolean(json.use_rslora),
      initLoraWeights: init === "gaussian" ? "gaussian" : init === false ? false : true,
      layersToTransform: (json.layers_to_transform ?? null) as number[] | null,
      layersPattern: (json.layers_pattern ?? null) as string[] | null,
      rankPattern: (json.rank_pattern ?? {}) as Record<string, number>,
      alphaPattern: (json.alpha_pattern ?? {}) as Record<string, number>,
      useDora: Boolean(json.use_dora),
      fanInFanOut: Boolean(json.fan_in_fan_out),
      baseModelNameOrPath: (json.base_model_name_or_path ?? null) as string | null,
    },
    file,
  );
}
