/**
 * The Llama-family decoder (Llama, Mistral, Qwen2, SmolLM), as transformers' LlamaForCausalLM:
 *
 *   h₀ = E[ids]
 *   hₗ' = hₗ + Attention(RMSNorm(hₗ))          (RoPE on q and k, grouped-query heads, causal mask)
 *   hₗ₊₁ = hₗ' + W_down(SiLU(W_gate x) ⊙ W_up x), x = RMSNorm(hₗ')
 *   logits = RMSNorm(h_L) W_headᵀ              (W_head = E when embeddings are tied)
 */
import { addSameShape, swiGlu, tf } from "../backend/index.js";
import { Embedding, Linear, RMSNorm } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { float32Linear, type LinearFactory, ModuleList, ModuleWithLinears } from "../nn/container.js";
import { runLayer } from "../nn/checkpointing.js";
import type { LlamaConfig } from "./config.js";
import { applyRotary, RotaryEmbedding } from "./rope.js";
import {
  attentionBias,
  type CausalLM,
  tiedHead,
  type ForwardOptions,
  mergeHeads,
  scaledDotProductAttention,
  splitHeads,
} from "./causal-lm.js";

/** Per-forward inputs shared by every layer. */
interface LayerContext {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  bias: tf.Tensor4D;
  options: ForwardOptions;
}

class LlamaAttention extends ModuleWithLinears {
  private readonly groups: number;

  constructor(
    private readonly c: LlamaConfig,
    private readonly layerIndex: number,
    linear: LinearFactory,
  ) {
    super();
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    this.addModule("q_proj", linear(c.hiddenSize, qDim, c.qkvBias, "linear"));
    this.addModule("k_proj", linear(c.hiddenSize, kvDim, c.qkvBias, "linear"));
    this.addModule("v_proj", linear(c.hiddenSize, kvDim, c.qkvBias, "linear"));
    this.addModule("o_proj", linear(qDim, c.hiddenSize, c.oBias, "linear"));
    this.groups = c.numHeads / c.numKvHeads;
  }

  forward(x: tf.Tensor3D, ctx: LayerContext): tf.Tensor3D {
    const q = applyRotary(splitHeads(this.linear("q_proj").forward(x), this.c.numHeads), ctx.cos, ctx.sin); // [B, H, T, D]
    let k = applyRotary(splitHeads(this.linear("k_proj").forward(x), this.c.numKvHeads), ctx.cos, ctx.sin); // [B, Hkv, T, D]
    let v = splitHeads(this.linear("v_proj").forward(x), this.c.numKvHeads); // [B, Hkv, T, D]
    if (ctx.options.cache) ({ k, v } = ctx.options.cache.append(this.layerIndex, k, v)); // [B, Hkv, Tpast+T, D]
    const y = scaledDotProductAttention(q, this.repeatKv(k), this.repeatKv(v), ctx.bias); // [B, H, T, D]
    return this.linear("o_proj").forward(mergeHeads(y)) as tf.Tensor3D; // [B, T, C]
  }

  /** Grouped-query attention: each key/value head serves `groups` query heads. [B, Hkv, T, D] → [B, H, T, D] */
  private repeatKv(x: tf.Tensor4D): tf.Tensor4D {
    if (this.groups === 1) return x;
    const [b, hkv, t, d] = x.shape;
    const groups = this.groups;
    // concat rather than tile/broadcastTo: tfjs has no rank-5 Tile gradient. concat's own gradient is a rank-5
    // split, which tfjs-wasm slices element by element (≈40 % of a training step); the gradient of a repeat is
    // the sum over the copies, so that is what we give it.
    const repeat = tf.customGrad(((x4: tf.Tensor) => ({
      value: tf.concat(new Array<tf.Tensor>(groups).fill(x4.reshape([b, hkv, 1, t, d])), 2).reshape([b, hkv * groups, t, d]),
      gradFunc: (dy: tf.Tensor) => dy.reshape([b, hkv, groups, t, d]).sum(2),
    })) as never) as (x4: tf.Tensor) => tf.Tensor4D;
    return repeat(x);
  }
}

class LlamaMLP extends ModuleWithLinears {
  constructor(c: LlamaConfig, linear: LinearFactory) {
    super();
    this.addModule("gate_proj", linear(c.hiddenSize, c.intermediateSize, c.mlpBias, "linear"));
    this.addModule("up_proj", linear(c.hiddenSize, c.intermediateSize, c.mlpBias, "linear"));
    this.addModule("down_proj", linear(c.intermediateSize, c.hiddenSize, c.mlpBias, "linear"));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    const hidden = swiGlu(this.linear("gate_proj").forward(x), this.linear("up_proj").forward(x)); // [B, T, I]
    return this.linear("down_proj").forward(hidden) as tf.Tensor3D; // [B, T, C]
  }
}

class LlamaDecoderLayer extends Module {
  private readonly attn: LlamaAttention;
  private readonly mlp: LlamaMLP;
  private readonly inputNorm: RMSNorm;
  private readonly postAttentionNorm: RMSNorm;

  constructor(c: LlamaConfig, index: number, linear: LinearFactory) {
    super();
    this.attn = this.addModule("self_attn", new LlamaAttention(c, index, linear));
    this.mlp = this.addModule("mlp", new LlamaMLP(c, linear));
    this.inputNorm = this.addModule("input_layernorm", new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.postAttentionNorm = this.addModule("post_attention_layernorm", new RMSNorm(c.hiddenSize, c.rmsNormEps));
  }

  /** In a tidy of its own: what the backward pass needs is kept by the tape, the rest goes after each layer. */
  forward(h: tf.Tensor3D, ctx: LayerContext): tf.Tensor3D {
    return tf.tidy(() => {
      const afterAttention = addSameShape(h, this.attn.forward(this.inputNorm.forward(h) as tf.Tensor3D, ctx)); // [B, T, C]
      return addSameShape(afterAttention, this.mlp.forward(this.postAttentionNorm.forward(afterAttention) as tf.Tensor3D)) as tf.Tensor3D;
    });
  }
}

class LlamaModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;

  constructor(c: LlamaConfig, linear: LinearFactory) {
    super();
    this.embedTokens = this.addModule("embed_tokens", new Embedding(c.vocabSize, c.hiddenSize));
    this.layers = this.addModule(
      "layers",
      new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new LlamaDecoderLayer(c, i, linear))),
    );
    this.norm = this.addModule("norm", new RMSNorm(c.hiddenSize, c.rmsNormEps));
  }
}

export class LlamaForCausalLM extends ModuleWithLinears implements CausalLM {
  private readonly model: LlamaModel;
  private readonly rope: RotaryEmbedding;

  constructor(
    readonly config: LlamaConfig,
    linear: LinearFactory = float32Linear,
  ) {
    super();
    this.model = this.addModule("model", new LlamaModel(config, linear));
    if (!config.tieWordEmbeddings) this.addModule("lm_head", new Linear(config.hiddenSize, config.vocabSize, false));
    this.rope = new RotaryEmbedding(config.headDim, config.ropeTheta, config.ropeScaling);
  }

  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    const [batch, length] = ids.shape;
    const past = options.cache?.length ?? 0;
    const { cos, sin } = this.rope.tables(past, length); // [T, D] each
    const bias = attentionBias(batch, length, past, options.attentionMask, this.config.slidingWindow); // [B, 1, T, Tpast+T]
    const ctx: LayerContext = { cos, sin, bias, options };
    let h = this.model.embedTokens.forward(ids) as tf.Tensor3D; // [B, T, C]
    for (const layer of this.model.layers.items)
      h = runLayer(layer, (x) => layer.forward(x, ctx), h, options.checkpointing, [cos, sin, bias]);
    return this.head(this.model.norm.forward(h) as tf.Tensor3D); // [B, T, V]
  }

  private head(h: tf.Tensor3D): tf.Tensor3D {
    if (!this.config.tieWordEmbeddings) return this.linear("lm_head").forward(h) as tf.Tensor3D;
    return tiedHead(h, this.model.embedTokens.weight);
  }
}
