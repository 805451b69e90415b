/** Which modules get LoRA layers, decided the way PEFT decides it. */
import { UserError } from "../core/errors.js";
import type { ModelConfig } from "../models/config.js";
import { isLinearLike } from "../nn/layers.js";
import type { Module } from "../nn/module.js";
import { defaultTargetModules, type LoraConfig } from "./config.js";

/** Modules inside a LoRA layer (its base_layer, A, B, magnitudes) are never targets themselves. */
function insideLoraLayer(name: string): boolean {
  return /(?:^|\.)(?:base_layer|lora_A|lora_B|lora_magnitude_vector)(?:\.|$)/.test(name);
}

/** Linear layers that may carry adapters, by full name. */
function candidateLayers(root: Module): [string, Module][] {
  return [...root.namedModules()].filter(([name]) => name !== "" && !insideLoraLayer(name));
}

/** PEFT's COMMON_LAYERS_PATTERN: the container names whose numeric children are layers. */
const COMMON_LAYERS_PATTERN = ["layers", "h", "block", "blocks", "layer"];

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function fullMatch(pattern: string, name: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(name);
}

/** A name list matches a module by its full name or a "."-separated suffix; a string is a regex over the full name. */
function matchesNames(spec: string[] | string, name: string): boolean {
  if (typeof spec === "string") return fullMatch(spec, name);
  return spec.some((s) => name === s || name.endsWith(`.${s}`));
}

function layerIndex(name: string, patterns: string[]): number | undefined {
  for (const p of patterns) {
    const m = new RegExp(`(?:^|.*\\.)${escapeRegex(p)}\\.(\\d+)\\.`).exec(name);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export function isTargeted(name: string, config: LoraConfig, targets: string[] | string): boolean {
  if (config.excludeModules !== null && matchesNames(config.excludeModules, name)) return false;
  if (!matchesNames(targets, name)) return false;
  if (config.layersToTransform === null) return true;
  const index = layerIndex(name, config.layersPattern ?? COMMON_LAYERS_PATTERN);
  return index !== undefined && config.layersToTransform.includes(index);
}

/**
 * The key of `pattern` that applies to module `name` (PEFT: the first key k with `(.*\.)?k$`
 * matching the name), or undefined.
 */
export function patternKey(pattern: Record<string, number>, name: string): string | undefined {
  return Object.keys(pattern).find((k) => new RegExp(`^(?:.*\\.)?(?:${k})$`).test(name));
}

export function rankAndAlpha(config: LoraConfig, name: string): { r: number; alpha: number } {
  const rKey = patternKey(config.rankPattern, name);
  const aKey = patternKey(config.alphaPattern, name);
  return { r: rKey ? config.rankPattern[rKey]! : config.r, alpha: aKey ? config.alphaPattern[aKey]! : config.loraAlpha };
}

/** The resolved target spec: the config's, else the architecture's default; "all-linear" expanded. */
export function targetSpec(config: LoraConfig, modelConfig: ModelConfig, root: Module): string[] | string {
  const t = config.targetModules ?? defaultTargetModules(modelConfig);
  if (t !== "all-linear" && !(Array.isArray(t) && t.length === 1 && t[0] === "all-linear")) return t;
  // Every linear layer except the output head, as PEFT's "all-linear"; stored as the distinct short names.
  const names = new Set<string>();
  for (const [name, m] of candidateLayers(root)) if (isLinearLike(m) && name !== "lm_head") names.add(name.split(".").pop()!);
  return [...names].sort();
}

/**
 * Full names of the modules to wrap; an error listing the model's linear layers when nothing matches.
 * `where` and `field` name the config and its target field in errors (a file and PEFT's key, or "lora config").
 */
export function findTargets(
  root: Module,
  config: LoraConfig,
  targets: string[] | string,
  where = "lora config",
  field = "targetModules",
): string[] {
  const found: string[] = [];
  for (const [name, m] of candidateLayers(root)) {
    if (!isTargeted(name, config, targets)) continue;
    if (!isLinearLike(m)) {
      if (typeof targets !== "string")
        throw new UserError(`${where}: ${field}: "${name}" is not a linear layer; LoRA wraps linear layers only`);
      continue;
    }
    found.push(name);
  }
  if (found.length === 0) {
    const linear = new Set(
      candidateLayers(root)
        .filter(([, m]) => isLinearLike(m))
        .map(([n]) => n.split(".").pop()!),
    );
    throw new UserError(
      `${where}: ${field}: ${JSON.stringify(targets)} match no layer of the model; its linear layers are: ${[...linear].join(", ")}`,
    );
  }
  return found;
}
