/**
 * Small checkpoints with seeded random weights in Hugging Face layout (config.json + model.safetensors),
 * so the loader and forward pass can be checked against the PyTorch reference on every architecture
 * we claim, not only on the one real model we have. Same seed → byte-identical files.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Random } from "../../src/core/random.js";
import { normalSamples } from "../../src/models/init.js";
import { writeSafetensors, type TensorToWrite } from "../../src/checkpoint/safetensors.js";

class WeightFactory {
  readonly tensors: Record<string, TensorToWrite> = {};
  private readonly random: Random;

  constructor(seed: number) {
    this.random = new Random(seed);
  }

  add(name: string, shape: number[], std = 0.2, mean = 0): void {
    const data = normalSamples(
      this.random,
      shape.reduce((a, b) => a * b, 1),
      std,
    );
    if (mean !== 0) for (let i = 0; i < data.length; i++) data[i]! += mean;
    this.tensors[name] = { shape, data };
  }
}

export type TinyKind = "llama" | "qwen2" | "mistral" | "gpt2" | "gpt2-prefixed";

export const TINY_VOCAB = 96;

function tinyLlama(kind: "llama" | "qwen2" | "mistral", w: WeightFactory): Record<string, unknown> {
  const hidden = 32,
    heads = 4,
    kvHeads = kind === "qwen2" ? 2 : kind === "mistral" ? 1 : 4,
    headDim = 8,
    inter = 48,
    layers = 2;
  const qkvBias = kind === "qwen2";
  w.add("model.embed_tokens.weight", [TINY_VOCAB, hidden], 0.5);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    w.add(`${p}.input_layernorm.weight`, [hidden], 0.1, 1);
    w.add(`${p}.post_attention_layernorm.weight`, [hidden], 0.1, 1);
    for (const [name, out] of [
      ["q_proj", heads * headDim],
      ["k_proj", kvHeads * headDim],
      ["v_proj", kvHeads * headDim],
    ] as const) {
      w.add(`${p}.self_attn.${name}.weight`, [out, hidden]);
      if (qkvBias) w.add(`${p}.self_attn.${name}.bias`, [out], 0.1);
    }
    w.add(`${p}.self_attn.o_proj.weight`, [hidden, heads * headDim]);
    w.add(`${p}.mlp.gate_proj.weight`, [inter, hidden]);
    w.add(`${p}.mlp.up_proj.weight`, [inter, hidden]);
    w.add(`${p}.mlp.down_proj.weight`, [hidden, inter]);
  }
  w.add("model.norm.weight", [hidden], 0.1, 1);
  const tied = kind === "llama";
  if (!tied) w.add("lm_head.weight", [TINY_VOCAB, hidden]);
  return {
    architectures: [kind === "qwen2" ? "Qwen2ForCausalLM" : kind === "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"],
    model_type: kind,
    vocab_size: TINY_VOCAB,
    hidden_size: hidden,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    rope_theta: kind === "qwen2" ? 1000000.0 : 10000.0,
    hidden_act: "silu",
    tie_word_embeddings: tied,
    bos_token_id: 1,
    eos_token_id: 2,
    ...(kind === "mistral" ? { sliding_window: 6 } : {}),
    ...(kind === "qwen2" ? { use_sliding_window: false } : {}),
    ...(kind === "llama"
      ? {
          rope_scaling: {
            rope_type: "llama3",
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16,
          },
        }
      : {}),
  };
}

function tinyGpt2(prefix: string, w: WeightFactory): Record<string, unknown> {
  const hidden = 32,
    layers = 2,
    positions = 64;
  w.add(`${prefix}wte.weight`, [TINY_VOCAB, hidden], 0.5);
  w.add(`${prefix}wpe.weight`, [positions, hidden], 0.1);
  for (let l = 0; l < layers; l++) {
    const p = `${prefix}h.${l}`;
    for (const ln of ["ln_1", "ln_2"]) {
      w.add(`${p}.${ln}.weight`, [hidden], 0.1, 1);
      w.add(`${p}.${ln}.bias`, [hidden], 0.1);
    }
    w.add(`${p}.attn.c_attn.weight`, [hidden, 3 * hidden]);
    w.add(`${p}.attn.c_attn.bias`, [3 * hidden], 0.1);
    w.add(`${p}.attn.c_proj.weight`, [hidden, hidden]);
    w.add(`${p}.attn.c_proj.bias`, [hidden], 0.1);
    w.add(`${p}.mlp.c_fc.weight`, [hidden, 4 * hidden]);
    w.add(`${p}.mlp.c_fc.bias`, [4 * hidden], 0.1);
    w.add(`${p}.mlp.c_proj.weight`, [4 * hidden, hidden]);
    w.add(`${p}.mlp.c_proj.bias`, [hidden], 0.1);
  }
  w.add(`${prefix}ln_f.weight`, [hidden], 0.1, 1);
  w.add(`${prefix}ln_f.bias`, [hidden], 0.1);
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: TINY_VOCAB,
    n_embd: hidden,
    n_head: 4,
    n_layer: layers,
    n_positions: positions,
    layer_norm_epsilon: 1e-5,
    activation_function: "gelu_new",
    bos_token_id: 0,
    eos_token_id: 0,
  };
}

/** Writes a tiny checkpoint of `kind` into `dir` (created) and returns `dir`. */
export async function writeTinyCheckpoint(dir: string, kind: TinyKind, seed = 1234): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const w = new WeightFactory(seed);
  const config = kind === "gpt2" ? tinyGpt2("", w) : kind === "gpt2-prefixed" ? tinyGpt2("transformer.", w) : tinyLlama(kind, w);
  fs.writeFileSync(path.join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  await writeSafetensors(path.join(dir, "model.safetensors"), w.tensors, { format: "pt" });
  return dir;
}

export const TINY_KINDS: TinyKind[] = ["llama", "qwen2", "mistral", "gpt2", "gpt2-prefixed"];
