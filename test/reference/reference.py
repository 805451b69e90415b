#!/usr/bin/python3
"""Independent float32 PyTorch reference for loralab's TypeScript engine.

Reads Hugging Face model directories (config.json + safetensors) and computes what
`transformers` computes for causal LMs, written from the published formats only
(no transformers / safetensors packages):

  * Llama family: model_type "llama", "mistral", "qwen2"
  * GPT-2:        model_type "gpt2"

Usage:  /usr/bin/python3 test/reference/reference.py REQUEST.json   (or "-" for stdin)
Prints one JSON object on stdout. The request format is in test/reference/README.md.
PEFT LoRA adapters and training ("lora_loss", "lora_train", "full_train") live in lora_reference.py.

Conventions (same as transformers' forward when called without position_ids):
  * position ids are always 0..T-1 for every row, so batches must be RIGHT-padded;
  * attention_mask (1 = token, 0 = padding) only masks padding positions as keys;
  * everything is float32 (half/bfloat16 checkpoints are upcast when read).
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------
# safetensors reader
#   file = u64 little-endian N | N bytes of JSON header | raw tensor bytes
#   header: {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
#   offsets are relative to the first byte after the header; data is little-endian, row-major.

_NP_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Returns every tensor of one .safetensors file as a float32 torch tensor."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    data = memoryview(blob)[8 + header_len :]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], list(info["shape"])
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        count = int(np.prod(shape)) if shape else 1
        if dtype == "BF16":
            # bfloat16 = upper 16 bits of an IEEE float32
            assert len(raw) == 2 * count, f"{path}:{name}: size mismatch"
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in _NP_DTYPES:
            arr = np.frombuffer(raw, dtype=_NP_DTYPES[dtype])
            assert arr.size == count, f"{path}:{name}: size mismatch"
            arr = arr.astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        out[name] = torch.from_numpy(arr.copy()).reshape(shape)
    return out


def load_checkpoint(model_dir: str) -> Dict[str, torch.Tensor]:
    """model.safetensors, or the shards listed in model.safetensors.index.json ("weight_map")."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map: Dict[str, str] = json.load(f)["weight_map"]
        tensors: Dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            part = read_safetensors(os.path.join(model_dir, shard))
            for name in part:
                if weight_map.get(name) == shard:
                    tensors[name] = part[name]
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError(f"{model_dir}: tensors listed in the index but absent: {sorted(missing)[:5]}")
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


class Weights:
    """Checkpoint tensors looked up with or without a prefix ("model." / "transformer.")."""

    def __init__(self, tensors: Dict[str, torch.Tensor], prefix: str):
        self.tensors, self.prefix = tensors, prefix
        self.used: set = set()

    def get(self, name: str, required: bool = True) -> Optional[torch.Tensor]:
        for key in (self.prefix + name, name):
            if key in self.tensors:
                self.used.add(key)
                return self.tensors[key]
        if required:
            raise KeyError(f"checkpoint has no tensor {self.prefix + name!r} (nor {name!r})")
        return None


def _assign(param: torch.Tensor, value: torch.Tensor, name: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError(f"{name}: checkpoint shape {tuple(value.shape)} != expected {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(value)


# ----------------------------------------------------------------------------
# activations (names as in transformers' ACT2FN)

def gelu_tanh(x: torch.Tensor) -> torch.Tensor:  # "gelu_new" / "gelu_pytorch_tanh"
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS = {
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu": F.gelu,  # exact (erf)
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}")
    return ACTIVATIONS[name]


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 compute for half/float32 inputs; float64 stays float64 (lora_check's finite differences)."""
    return x if x.dtype == torch.float64 else x.float()


# ----------------------------------------------------------------------------
# masks

NEG = torch.finfo(torch.float32).min  # transformers fills masked scores with the dtype minimum


def attention_bias(attention_mask: torch.Tensor, window: Optional[int] = None) -> torch.Tensor:
    """attention_mask [B,T] (1 keep, 0 pad) -> additive bias [B,1,T,T]: causal + padded keys masked."""
    B, T = attention_mask.shape
    i = torch.arange(T)[:, None]  # query
    j = torch.arange(T)[None, :]  # key
    allowed = (j <= i)[None, :, :] & attention_mask.bool()[:, None, :]  # [B,T,T]
    if window is not None:
        allowed = allowed & (i - j < window)[None]
    bias = torch.zeros(B, T, T, dtype=torch.float32).masked_fill(~allowed, NEG)
    return bias[:, None, :, :]


# ----------------------------------------------------------------------------
# Llama family (llama / mistral / qwen2)

@dataclass
class LlamaConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    attention_bias: bool  # bias on q, k, v, o
    qkv_bias: bool        # qwen2: bias on q, k, v only
    mlp_bias: bool
    hidden_act: str
    tie_word_embeddings: bool
    sliding_window: Optional[int]
    rope_scaling: Optional[Dict[str, Any]]

    @staticmethod
    def from_hf(c: Dict[str, Any]) -> "LlamaConfig":
        mt = c["model_type"]
        heads = c["num_attention_heads"]
        rope_scaling = c.get("rope_scaling")
        if rope_scaling and rope_scaling.get("rope_type", rope_scaling.get("type")) not in (None, "default", "linear", "llama3"):
            raise NotImplementedError(f"rope_scaling {rope_scaling} is not implemented in the reference")
        window = None
        if mt == "mistral":
            window = c.get("sliding_window")
        elif mt == "qwen2" and c.get("use_sliding_window"):
            raise NotImplementedError("qwen2 use_sliding_window=true is not implemented in the reference")
        return LlamaConfig(
            model_type=mt,
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=c.get("num_key_value_heads") or heads,
            head_dim=c.get("head_dim") or c["hidden_size"] // heads,
            rms_norm_eps=c.get("rms_norm_eps", 1e-6),
            rope_theta=c.get("rope_theta", 10000.0),
            max_position_embeddings=c.get("max_position_embeddings", 2048),
            attention_bias=bool(c.get("attention_bias", False)) if mt == "llama" else False,
            qkv_bias=(mt == "qwen2"),
            mlp_bias=bool(c.get("mlp_bias", False)) if mt == "llama" else False,
            hidden_act=c.get("hidden_act", "silu"),
            # LlamaConfig / MistralConfig / Qwen2Config all default to False
            tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
            sliding_window=window,
            rope_scaling=rope_scaling or None,
        )


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., C] -> [..., C]
        x = upcast(x)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def scaled_inv_freq(inv_freq: torch.Tensor, scaling: Optional[Dict[str, Any]]) -> torch.Tensor:
    """transformers' "linear" and "llama3" RoPE scaling of the inverse frequencies."""
    kind = scaling.get("rope_type", scaling.get("type")) if scaling else None
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
        old_len = scaling.get("original_max_position_embeddings", 8192)
        wavelen = 2 * math.pi / inv_freq
        out = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        return torch.where(medium, smoothed, out)
    return inv_freq


def rope_cos_sin(T: int, head_dim: int, theta: float, scaling: Optional[Dict[str, Any]] = None):
    """HF rotate_half convention: cos/sin [T, head_dim], the half-size frequency table repeated twice."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))  # [D/2]
    inv_freq = scaled_inv_freq(inv_freq, scaling)
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]  # [T, D/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, D]
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + rotate_half(x) * sin  # x [B,H,T,D], cos/sin [T,D]


class LlamaAttention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        H, KV, D, C = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size
        qkv_bias = cfg.attention_bias or cfg.qkv_bias
        self.q_proj = nn.Linear(C, H * D, bias=qkv_bias)
        self.k_proj = nn.Linear(C, KV * D, bias=qkv_bias)
        self.v_proj = nn.Linear(C, KV * D, bias=qkv_bias)
        self.o_proj = nn.Linear(H * D, C, bias=cfg.attention_bias)

    def forward(self, x, cos, sin, bias):  # x [B,T,C], bias [B,1,T,T]
        B, T, _ = x.shape
        H, KV, D = self.cfg.num_attention_heads, self.cfg.num_key_value_heads, self.cfg.head_dim
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)   # [B,H,T,D]
        k = self.k_proj(x).view(B, T, KV, D).transpose(1, 2)  # [B,KV,T,D]
        v = self.v_proj(x).view(B, T, KV, D).transpose(1, 2)  # [B,KV,T,D]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # grouped-query attention: query head h uses kv head h // (H/KV)
        k = k.repeat_interleave(H // KV, dim=1)  # [B,H,T,D]
        v = v.repeat_interleave(H // KV, dim=1)
        att = (q @ k.transpose(-2, -1)) * (D ** -0.5) + bias  # [B,H,T,T]
        att = torch.softmax(upcast(att), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * D)  # [B,T,H*D]
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        C, I, b = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gate_proj = nn.Linear(C, I, bias=b)
        self.up_proj = nn.Linear(C, I, bias=b)
        self.down_proj = nn.Linear(I, C, bias=b)
        self.act = activation(cfg.hidden_act)

    def forward(self, x):  # [B,T,C] -> [B,T,C]
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = LlamaMLP(cfg)

    def forward(self, x, cos, sin, bias):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([LlamaBlock(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def max_positions(self) -> int:
        return sys.maxsize  # RoPE has no table: transformers runs past max_position_embeddings too

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        B, T = input_ids.shape  # -> logits [B,T,V]
        cos, sin = rope_cos_sin(T, self.cfg.head_dim, self.cfg.rope_theta, self.cfg.rope_scaling)
        bias = attention_bias(attention_mask, self.cfg.sliding_window)
        x = self.embed_tokens(input_ids)  # [B,T,C]
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        return self.lm_head(self.norm(x))

    def load(self, tensors: Dict[str, torch.Tensor]) -> set:
        w = Weights(tensors, "model.")
        for name, param in self.named_parameters():
            if name.startswith("lm_head."):
                continue
            _assign(param, w.get(name), name)
        head = None if self.cfg.tie_word_embeddings else w.get("lm_head.weight", required=False)
        _assign(self.lm_head.weight, head if head is not None else self.embed_tokens.weight, "lm_head.weight")
        self.lm_head_tied = head is None  # lm_head is a copy of embed_tokens (full_train re-ties them)
        return w.used


# ----------------------------------------------------------------------------
# GPT-2

@dataclass
class GPT2Config:
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    layer_norm_epsilon: float
    activation_function: str
    scale_attn_weights: bool
    tie_word_embeddings: bool

    @staticmethod
    def from_hf(c: Dict[str, Any]) -> "GPT2Config":
        if c.get("scale_attn_by_inverse_layer_idx") or c.get("reorder_and_upcast_attn"):
            raise NotImplementedError("scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn")
        n_embd = c.get("n_embd", 768)
        return GPT2Config(
            vocab_size=c.get("vocab_size", 50257),
            n_positions=c.get("n_positions", 1024),
            n_embd=n_embd,
            n_layer=c.get("n_layer", 12),
            n_head=c.get("n_head", 12),
            n_inner=c.get("n_inner") or 4 * n_embd,
            layer_norm_epsilon=c.get("layer_norm_epsilon", 1e-5),
            activation_function=c.get("activation_function", "gelu_new"),
            scale_attn_weights=c.get("scale_attn_weights", True),
            tie_word_embeddings=c.get("tie_word_embeddings", True),
        )


class Conv1D(nn.Module):
    """GPT-2's transposed linear layer: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class GPT2Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.cfg = cfg
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x, bias):  # x [B,T,C], bias [B,1,T,T]
        B, T, C = x.shape
        H = self.cfg.n_head
        D = C // H
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x [B,T,C]
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # [B,H,T,D]
        att = q @ k.transpose(-2, -1)  # [B,H,T,T]
        if self.cfg.scale_attn_weights:
            att = att / math.sqrt(D)
        att = torch.softmax(att + bias, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class GPT2MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, cfg.n_inner)
        self.c_proj = Conv1D(cfg.n_inner, cfg.n_embd)
        self.act = activation(cfg.activation_function)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x, bias):
        x = x + self.attn(self.ln_1(x), bias)
        return x + self.mlp(self.ln_2(x))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    @property
    def max_positions(self) -> int:
        return self.cfg.n_positions

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        B, T = input_ids.shape  # -> logits [B,T,V]
        bias = attention_bias(attention_mask)
        x = self.wte(input_ids) + self.wpe(torch.arange(T))[None]  # [B,T,C]
        for block in self.h:
            x = block(x, bias)
        return self.lm_head(self.ln_f(x))

    def load(self, tensors: Dict[str, torch.Tensor]) -> set:
        w = Weights(tensors, "transformer.")
        for name, param in self.named_parameters():
            if name.startswith("lm_head."):
                continue
            _assign(param, w.get(name), name)
        head = None if self.cfg.tie_word_embeddings else w.get("lm_head.weight", required=False)
        _assign(self.lm_head.weight, head if head is not None else self.wte.weight, "lm_head.weight")
        self.lm_head_tied = head is None  # lm_head is a copy of wte (full_train re-ties them)
        return w.used


# ----------------------------------------------------------------------------
# loading

IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


@dataclass
class LoadedModel:
    model: nn.Module
    config: Dict[str, Any]
    eos_token_ids: List[int]


def load_model(model_dir: str) -> LoadedModel:
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    mt = config.get("model_type")
    if mt in ("llama", "mistral", "qwen2"):
        model: nn.Module = LlamaForCausalLM(LlamaConfig.from_hf(config))
    elif mt == "gpt2":
        model = GPT2LMHeadModel(GPT2Config.from_hf(config))
    else:
        raise ValueError(f"{model_dir}: unsupported model_type {mt!r}")
    tensors = load_checkpoint(model_dir)
    used = model.load(tensors)
    # tensors transformers also ignores: GPT-2's stored causal-mask buffers, old rotary inv_freq buffers
    unused = [k for k in tensors if k not in used and not k.endswith(IGNORED_SUFFIXES) and k != "lm_head.weight"]
    if unused:
        raise ValueError(f"{model_dir}: checkpoint tensors not used by the model: {unused[:5]}")
    model.eval()
    # eos: generation_config.json wins over config.json, as in transformers' generate()
    eos = config.get("eos_token_id")
    gen_path = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            eos = json.load(f).get("eos_token_id", eos)
    eos_ids = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
    return LoadedModel(model, config, eos_ids)


# ----------------------------------------------------------------------------
# computations

def as_batch(ids: Sequence) -> torch.Tensor:
    t = torch.tensor(ids, dtype=torch.long)
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] == 0:
        raise ValueError("input_ids must be a non-empty list of ids or a list of equal-length lists")
    return t


@torch.no_grad()
def forward(lm: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    if input_ids.shape[1] > lm.model.max_positions:
        raise ValueError(f"sequence length {input_ids.shape[1]} > max positions {lm.model.max_positions}")
    vocab = lm.model.lm_head.weight.shape[0]
    if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab:
        raise ValueError(f"input id out of range [0, {vocab})")
    return lm.model(input_ids, attention_mask).float()


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, Any]:
    """transformers' causal-LM loss: logits[:, :-1] predict labels[:, 1:], ignore -100, mean in float32."""
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V)  # [B*(T-1), V]
    shift_labels = labels[:, 1:].reshape(-1)  # [B*(T-1)]
    loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)  # float32 mean
    nll = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="none")
    keep = shift_labels != IGNORE_INDEX
    B, T = labels.shape
    per_token = [
        [float(nll[b * (T - 1) + t]) if keep[b * (T - 1) + t] else None for t in range(T - 1)] for b in range(B)
    ]
    return {
        "loss": float(loss) if keep.any() else None,  # transformers gives NaN when no token counts
        "nll_sum": float(nll[keep].double().sum()),
        "tokens": int(keep.sum()),
        "nll": per_token,
    }


def run_case(case: Dict[str, Any], base_dir: str, cache: Dict[str, LoadedModel]) -> Dict[str, Any]:
    model_dir = os.path.normpath(os.path.join(base_dir, case["model"]))
    if model_dir not in cache:
        cache[model_dir] = load_model(model_dir)
    lm = cache[model_dir]
    kind = case["kind"]
    if kind in ("lora_train", "full_train", "lora_loss") or case.get("adapter") is not None:
        import lora_reference  # PEFT LoRA + training (test/reference/lora_reference.py)

        if kind in ("lora_train", "full_train"):
            return lora_reference.run_train_case(case, base_dir, lm, model_dir)
        if case.get("adapter") is None:
            raise ValueError("lora_loss needs an adapter directory")
        if kind not in ("loss", "lora_loss", "logits", "greedy"):
            raise ValueError(f"unknown kind {kind!r}")
        # a fresh wrapped copy per case (adapter directories may be rewritten by save_to)
        lm = lora_reference.with_adapter(lm, os.path.normpath(os.path.join(base_dir, case["adapter"])))
        kind = "loss" if kind == "lora_loss" else kind
    single = not isinstance(case["input_ids"][0], list)
    input_ids = as_batch(case["input_ids"])  # [B,T]
    if case.get("attention_mask") is not None:
        attention_mask = as_batch(case["attention_mask"])
        if attention_mask.shape != input_ids.shape:
            raise ValueError("attention_mask shape != input_ids shape")
    else:
        attention_mask = torch.ones_like(input_ids)

    if kind == "loss":
        if case.get("labels") is not None:
            labels = as_batch(case["labels"])
            if labels.shape != input_ids.shape:
                raise ValueError("labels shape != input_ids shape")
        else:
            labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        result = causal_lm_loss(forward(lm, input_ids, attention_mask), labels)
        if not case.get("per_token"):
            del result["nll"]
        elif single:
            result["nll"] = result["nll"][0]
        return result

    if kind == "logits":
        logits = forward(lm, input_ids, attention_mask)  # [B,T,V]
        T = input_ids.shape[1]
        positions = case.get("positions")
        if positions is None:
            positions = list(range(T))
        for p in positions:
            if not -T <= p < T:
                raise ValueError(f"position {p} out of range for length {T}")
        rows = logits[:, torch.tensor(positions, dtype=torch.long), :]  # [B,P,V]
        out = rows.tolist()
        return {"logits": out[0] if single else out}

    if kind == "greedy":
        if input_ids.shape[0] != 1 or case.get("attention_mask") is not None:
            raise ValueError("greedy takes one unpadded sequence")
        eos = case.get("eos", True)
        if eos is True:
            stop = set(lm.eos_token_ids)
        elif eos is False or eos is None:
            stop = set()
        else:
            stop = {eos} if isinstance(eos, int) else set(eos)
        ids = input_ids[0].tolist()
        new_ids: List[int] = []
        for _ in range(int(case.get("max_new_tokens", 20))):
            x = torch.tensor([ids])
            logits = forward(lm, x, torch.ones_like(x))  # full recompute, no cache
            nxt = int(torch.argmax(logits[0, -1]))  # first maximum on ties, like torch/transformers
            ids.append(nxt)
            new_ids.append(nxt)
            if nxt in stop:
                break
        return {"new_ids": new_ids}

    raise ValueError(f"unknown kind {kind!r}")


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "-":
        request, base_dir = json.load(sys.stdin), os.getcwd()
    else:
        with open(argv[1]) as f:
            request = json.load(f)
        base_dir = os.path.dirname(os.path.abspath(argv[1]))
    torch.manual_seed(0)
    cache: Dict[str, LoadedModel] = {}
    results: Dict[str, Any] = {}
    failed = False
    for i, case in enumerate(request["cases"]):
        name = case.get("name", f"case{i}")
        if name in results:
            raise ValueError(f"duplicate case name {name!r}")
        try:
            results[name] = run_case(case, base_dir, cache)
        except Exception as e:  # report per case, keep going
            failed = True
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    out = {"torch_version": torch.__version__, "results": results}
    sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.modules.setdefault("reference", sys.modules[__name__])  # lora_reference imports this very module
    sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
    sys.exit(main(sys.argv))
