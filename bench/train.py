#!/usr/bin/python3
"""PyTorch reference for `loralab bench --config NAME --mode lora|full`.

The same computation as loralab's training step, written plainly in PyTorch: a Llama (RMSNorm, RoPE in
transformers' rotate_half convention, grouped-query attention with a causal mask, SwiGLU MLP, tied
embeddings) with transformers' initialisation (normal weights, std 0.02; norm weights 1), random token
ids, the causal-LM loss, and a step of AdamW (torch.optim.AdamW, lr 1e-4) after clipping the gradient
norm at 1.0. LoRA: PEFT's defaults (r 8, alpha 8, no dropout, A ~ kaiming-uniform, B = 0) on q_proj and
v_proj, the base frozen.

Usage: /usr/bin/python3 bench/train.py --shape JSON --mode lora|full [--steps N] [--threads T]
  JSON = {"config": {config.json fields}, "batch": B, "seq": T} (bench/compare.ts passes loralab's own).
Prints one JSON line: tokens_per_s, step_s (median after a warm-up step), peak_rss_bytes, threads, ...
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """y = x Wᵀ + (x Aᵀ) Bᵀ · alpha/r with W frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features).uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.t()) @ self.lora_B.t() * self.scaling


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        self.head_dim = c["hidden_size"] // self.heads
        h = c["hidden_size"]
        self.q_proj = nn.Linear(h, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, h, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        y = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(h, i, bias=False), nn.Linear(h, i, bias=False), nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"]), RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn, self.mlp = Attention(c), MLP(c)

    def forward(self, h, cos, sin, mask):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, ids):
        t = ids.shape[1]
        d = self.c["hidden_size"] // self.c["num_attention_heads"]
        inv_freq = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        angles = torch.outer(torch.arange(t, dtype=torch.float32), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((t, t), float("-inf")).triu(1)
        h = self.embed_tokens(ids)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h) @ self.embed_tokens.weight.t()  # tied head


def initialise(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            with torch.no_grad():
                module.weight.normal_(0.0, 0.02, generator=generator)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", required=True)
    ap.add_argument("--mode", choices=["lora", "full"], required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    shape = json.loads(a.shape)
    c, batch, seq = shape["config"], shape["batch"], shape["seq"]
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(c)
    initialise(model, torch.Generator().manual_seed(0))
    if a.mode == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in model.layers:
            layer.self_attn.q_proj = LoraLinear(layer.self_attn.q_proj, 8, 8)
            layer.self_attn.v_proj = LoraLinear(layer.self_attn.v_proj, 8, 8)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    data = torch.randint(0, c["vocab_size"], (a.steps + 1, batch, seq), generator=torch.Generator().manual_seed(1))
    times, cpu_times, losses = [], [], []
    for step in range(a.steps + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        ids = data[step]
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab_size"]), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    step_s = statistics.median(times[1:])
    result = {
        "tokens_per_s": batch * seq / step_s,
        "step_s": step_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "backend": f"pytorch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "mode": a.mode,
        "batch": batch,
        "seq": seq,
        "steps": a.steps,
        "step_times_s": times[1:],
        "step_cpu_s": statistics.median(cpu_times[1:]),  # all threads, spin-waiting included
        "first_loss": losses[0],
        "trainable_params": sum(p.numel() for p in params),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
