/**
 * GPT-2 as transformers' GPT2LMHeadModel: learned positions, pre-LayerNorm blocks, GELU MLP,
 * and Conv1D projections (weights stored [in, out]).
 *
 *   h₀ = wte[ids] + wpe[positions]
 *   hₗ' = hₗ + c_proj(Attention(c_attn(LN₁(hₗ))))
 *   hₗ₊₁ = hₗ' + c_proj(act(c_fc(LN₂(hₗ'))))
 *   logits = LN_f(h_L) wteᵀ
 */
import { addSameShape, tf } from "../backend/index.js";
import { Embedding, LayerNorm, Linear } from "../nn/layers.js";
import { Module } from "../nn/module.js";
import { float32Linear, type LinearFactory, ModuleList, ModuleWithLinears } from "../nn/container.js";
import { runLayer } from "../nn/checkpointing.js";
import type { Gpt2Activation, Gpt2Config } from "./config.js";
import {
  attentionBias,
  type CausalLM,
  tiedHead,
  type ForwardOptions,
  mergeHeads,
  scaledDotProductAttention,
  splitHeads,
} from "./causal-lm.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function applyActivation(x: tf.Tensor, kind: Gpt2Activation): tf.Tensor {
  switch (kind) {
    case "gelu_new":
    case "gelu_pytorch_tanh": // 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
      return x.mul(0.5).mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(SQRT_2_OVER_PI)).add(1));
    case "gelu": // exact: 0.5 x (1 + erf(x / √2))
      return x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1));
    case "relu":
      return tf.relu(x);
    case "silu":
      return x.mul(tf.sigmoid(x));
  }
}

class Gpt2Attention extends ModuleWithLinears {
  constructor(
    private readonly c: Gpt2Config,
    private readonly layerIndex: number,
    linear: LinearFactory,
  ) {
    super();
    this.addModule("c_attn", linear(c.hiddenSize, 3 * c.hiddenSize, true, "conv1d"));
    this.addModule("c_proj", linear(c.hiddenSize, c.hiddenSize, true, "conv1d"));
  }

  forward(x: tf.Tensor3D, bias: tf.Tensor4D, options: ForwardOptions): tf.Tensor3D {
    const [qx, kx, vx] = tf.split(this.linear("c_attn").forward(x), 3, -1); // [B, T, C] each
    const q = splitHeads(qx!, this.c.numHeads); // [B, H, T, D]
    let k = splitHeads(kx!, this.c.numHeads);
    let v = splitHeads(vx!, this.c.numHeads);
    if (options.cache) ({ k, v } = options.cache.append(this.layerIndex, k, v)); // [B, H, Tpast+T, D]
    const y = scaledDotProductAttention(q, k, v, bias); // [B, H, T, D]
    return this.linear("c_proj").forward(mergeHeads(y)) as tf.Tensor3D; // [B, T, C]
  }
}

class Gpt2MLP extends ModuleWithLinears {
  constructor(
    private readonly c: Gpt2Config,
    linear: LinearFactory,
  ) {
    super();
    this.addModule("c_fc", linear(c.hiddenSize, c.intermediateSize, true, "conv1d"));
    this.addModule("c_proj", linear(c.intermediateSize, c.hiddenSize, true, "conv1d"));
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return this.linear("c_proj").forward(applyActivation(this.linear("c_fc").forward(x), this.c.activation)) as tf.Tensor3D; // [B, T, C]
  }
}

class Gpt2Block extends Module {
  private readonly ln1: LayerNorm;
  private readonly attn: Gpt2Attention;
  private readonly ln2: LayerNorm;
  private readonly mlp: Gpt2MLP;

  constructor(c: Gpt2Config, index: number, linear: LinearFactory) {
    super();
    this.ln1 = this.addModule("ln_1", new LayerNorm(c.hiddenSize, c.layerNormEps));
    this.attn = this.addModule("attn", new Gpt2Attention(c, index, linear));
    this.ln2 = this.addModule("ln_2", new LayerNorm(c.hiddenSize, c.layerNormEps));
    this.mlp = this.addModule("mlp", new Gpt2MLP(c, linear));
  }

  /** In a tidy of its own: what the backward pass needs is kept by the tape, the rest goes after each block. */
  forward(h: tf.Tensor3D, bias: tf.Tensor4D, options: ForwardOptions): tf.Tensor3D {
    return tf.tidy(() => {
      const afterAttention = addSameShape(h, this.attn.forward(this.ln1.forward(h) as tf.Tensor3D, bias, options)); // [B, T, C]
      return addSameShape(afterAttention, this.mlp.forward(this.ln2.forward(afterAttention) as tf.Tensor3D)) as tf.Tensor3D;
    });
  }
}

class Gpt2Model extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<Gpt2Block>;
  readonly lnF: LayerNorm;

  constructor(c: Gpt2Config, linear: LinearFactory) {
    super();
    this.wte = this.addModule("wte", new Embedding(c.vocabSize, c.hiddenSize));
    this.wpe = this.addModule("wpe", new Embedding(c.maxPositions, c.hiddenSize));
    this.h = this.addModule("h", new ModuleList(Array.from({ length: c.numLayers }, (_, i) => new Gpt2Block(c, i, linear))));
    this.lnF = this.addModule("ln_f", new LayerNorm(c.hiddenSize, c.layerNormEps));
  }
}

export class Gpt2LMHeadModel extends ModuleWithLinears implements CausalLM {
  private readonly transformer: Gpt2Model;

  constructor(
    readonly config: Gpt2Config,
    linear: LinearFactory = float32Linear,
  ) {
    super();
    this.transformer = this.addModule("transformer", new Gpt2Model(config, linear));
    if (!config.tieWordEmbeddings) this.addModule("lm_head", new Linear(config.hiddenSize, config.vocabSize, false));
  }

  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    const [batch, length] = ids.shape;
    const past = options.cache?.length ?? 0;
    const positions = tf.range(past, past + length, 1, "int32").expandDims(0); // [1, T]
    const bias = attentionBias(batch, length, past, options.attentionMask); // [B, 1, T, Tpast+T]
    let h = this.transformer.wte.forward(ids).add(this.transformer.wpe.forward(positions)) as tf.Tensor3D; // [B, T, C]
    for (const block of this.transformer.h.items)
      h = runLayer(block, (x) => block.forward(x, bias, options), h, options.checkpointing, [bias]);
    const x = this.transformer.lnF.forward(h) as tf.Tensor3D; // [B, T, C]
    if (!this.config.tieWordEmbeddings) return this.linear("lm_head").forward(x) as tf.Tensor3D;
    return tiedHead(x, this.transformer.wte.weight); // [B, T, V]
  }
}
