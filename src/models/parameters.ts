/**
 * The parameters a config.json implies, by checkpoint name, shape and role, in the models' own parameter order —
 * known without building the model, so that a checkpoint can be checked and a memory need estimated before a byte
 * is allocated, and so that weights can be written for a model too large to build (scripts/). A test keeps this
 * list equal to what llama.ts and gpt2.ts build.
 */
import type { Gpt2Config, LlamaConfig, ModelConfig } from "./config.js";

/**
 * "projection": a linear weight of a decoder layer (what QLoRA quantizes); "embedding" and "head": the token
 * tables; "position": GPT-2's learned positions; "norm": a normalisation weight; "bias": any bias.
 */
export type ParameterRole = "projection" | "embedding" | "head" | "position" | "norm" | "bias";

export interface ParameterSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: ParameterRole;
  /** Projections: how the checkpoint stores the weight, torch.nn.Linear's [out, in] or GPT-2's Conv1D [in, out]. */
  readonly layout?: "linear" | "conv1d";
}

export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function linear(name: string, inF: number, outF: number, bias: boolean): ParameterSpec[] {
  const weight: ParameterSpec = { name: `${name}.weight`, shape: [outF, inF], role: "projection", layout: "linear" };
  return bias ? [weight, { name: `${name}.bias`, shape: [outF], role: "bias" }] : [weight];
}

function conv1d(name: string, inF: number, outF: number): ParameterSpec[] {
  return [
    { name: `${name}.weight`, shape: [inF, outF], role: "projection", layout: "conv1d" },
    { name: `${name}.bias`, shape: [outF], role: "bias" },
  ];
}

const rmsNorm = (name: string, dim: number): ParameterSpec[] => [{ name: `${name}.weight`, shape: [dim], role: "norm" }];
const layerNorm = (name: string, dim: number): ParameterSpec[] => [
  { name: `${name}.weight`, shape: [dim], role: "norm" },
  { name: `${name}.bias`, shape: [dim], role: "bias" },
];

function llamaParameters(c: LlamaConfig): ParameterSpec[] {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const out: ParameterSpec[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, c.hiddenSize], role: "embedding" }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      ...linear(`${p}.self_attn.q_proj`, c.hiddenSize, qDim, c.qkvBias),
      ...linear(`${p}.self_attn.k_proj`, c.hiddenSize, kvDim, c.qkvBias),
      ...linear(`${p}.self_attn.v_proj`, c.hiddenSize, kvDim, c.qkvBias),
      ...linear(`${p}.self_attn.o_proj`, qDim, c.hiddenSize, c.oBias),
      ...linear(`${p}.mlp.gate_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias),
      ...linear(`${p}.mlp.up_proj`, c.hiddenSize, c.intermediateSize, c.mlpBias),
      ...linear(`${p}.mlp.down_proj`, c.intermediateSize, c.hiddenSize, c.mlpBias),
      ...rmsNorm(`${p}.input_layernorm`, c.hiddenSize),
      ...rmsNorm(`${p}.post_attention_layernorm`, c.hiddenSize),
    );
  }
  out.push(...rmsNorm("model.norm", c.hiddenSize));
  if (!c.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, c.hiddenSize], role: "head" });
  return out;
}

function gpt2Parameters(c: Gpt2Config): ParameterSpec[] {
  const out: ParameterSpec[] = [
    { name: "transformer.wte.weight", shape: [c.vocabSize, c.hiddenSize], role: "embedding" },
    { name: "transformer.wpe.weight", shape: [c.maxPositions, c.hiddenSize], role: "position" },
  ];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.h.${i}`;
    out.push(
      ...layerNorm(`${p}.ln_1`, c.hiddenSize),
      ...conv1d(`${p}.attn.c_attn`, c.hiddenSize, 3 * c.hiddenSize),
      ...conv1d(`${p}.attn.c_proj`, c.hiddenSize, c.hiddenSize),
      ...layerNorm(`${p}.ln_2`, c.hiddenSize),
      ...conv1d(`${p}.mlp.c_fc`, c.hiddenSize, c.intermediateSize),
      ...conv1d(`${p}.mlp.c_proj`, c.intermediateSize, c.hiddenSize),
    );
  }
  out.push(...layerNorm("transformer.ln_f", c.hiddenSize));
  if (!c.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, c.hiddenSize], role: "head" });
  return out;
}

/** Every parameter of the model `config` describes (a tied output head is the embedding, not listed twice). */
export function parameterSpecs(config: ModelConfig): ParameterSpec[] {
  return config.family === "gpt2" ? gpt2Parameters(config) : llamaParameters(config);
}

/** How many weight tensors `config` implies, and how many per decoder layer, without listing them (a config may claim 2⁴⁰ layers). */
export function parameterCount(config: ModelConfig): { total: number; perLayer: number } {
  const none = parameterSpecs({ ...config, numLayers: 0 }).length;
  const perLayer = parameterSpecs({ ...config, numLayers: 1 }).length - none;
  return { total: none + config.numLayers * perLayer, perLayer };
}
