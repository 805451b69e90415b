#!/usr/bin/python3
"""Self-test of reference.py's Llama-family options that stories260K does not exercise.

An independent tiny Llama written Meta-style: complex-number INTERLEAVED rope, GQA by grouping
query heads with einsum (no repeat), weights exported to HF layout with the q/k row permutation of
transformers' convert_llama_weights_to_hf. Checked variants (random weights, written to a temp dir):
  qwen2  - bias on q/k/v (not o), untied lm_head
  llama  - attention_bias + mlp_bias, head_dim (16) != hidden/heads, tied embeddings, rope_theta 5e5
  mistral- plain, MHA (kv heads = heads), BF16 checkpoint

Usage: /usr/bin/python3 test/reference/make_llama_check.py     (exit 1 on mismatch)
"""
import json
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
sys.path.insert(0, HERE)
import reference  # noqa: E402
from make_gpt2_check import write_safetensors  # noqa: E402

VARIANTS = {
    "qwen2": dict(model_type="qwen2", hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=None,
                  qkv_bias=True, o_bias=False, mlp_bias=False, tie=False, theta=1e6),
    "llama": dict(model_type="llama", hidden_size=48, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  qkv_bias=True, o_bias=True, mlp_bias=True, tie=True, theta=5e5),
    "mistral": dict(model_type="mistral", hidden_size=32, num_attention_heads=4, num_key_value_heads=4, head_dim=None,
                    qkv_bias=False, o_bias=False, mlp_bias=False, tie=False, theta=1e4),
}
V, I, L, EPS = 67, 40, 2, 1e-6


def make_weights(v, gen):
    C, H, KV = v["hidden_size"], v["num_attention_heads"], v["num_key_value_heads"]
    D = v["head_dim"] or C // H
    r = lambda *s: torch.randn(*s, generator=gen) * 0.3  # noqa: E731
    w = {"emb": r(V, C), "norm": 1 + r(C), "head": r(V, C), "layers": []}
    for _ in range(L):
        w["layers"].append(dict(
            n1=1 + r(C), n2=1 + r(C), wq=r(H * D, C), wk=r(KV * D, C), wv=r(KV * D, C), wo=r(C, H * D),
            bq=r(H * D), bk=r(KV * D), bv=r(KV * D), bo=r(C),
            w1=r(I, C), w3=r(I, C), w2=r(C, I), b1=r(I), b3=r(I), b2=r(C)))
    return w, D


def meta_forward(v, w, D, ids):
    """Meta llama style: rope on complex pairs (x[2i], x[2i+1]); query heads grouped by kv head."""
    H, KV = v["num_attention_heads"], v["num_key_value_heads"]
    B, T = ids.shape
    inv = 1.0 / (v["theta"] ** (torch.arange(0, D, 2).float() / D))
    freqs_cis = torch.polar(torch.ones(T, D // 2), torch.outer(torch.arange(T).float(), inv))  # [T, D/2]

    def rope(x):  # [B,T,n,D]
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], D // 2, 2))
        return torch.view_as_real(xc * freqs_cis[None, :, None, :]).flatten(-2)

    def norm(x, g):
        return g * x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS)

    lin = lambda x, W, b, on: F.linear(x, W, b if on else None)  # noqa: E731
    x = w["emb"][ids]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in w["layers"]:
        h = norm(x, l["n1"])
        q = rope(lin(h, l["wq"], l["bq"], v["qkv_bias"]).view(B, T, H, D))
        k = rope(lin(h, l["wk"], l["bk"], v["qkv_bias"]).view(B, T, KV, D))
        val = lin(h, l["wv"], l["bv"], v["qkv_bias"]).view(B, T, KV, D)
        q = q.view(B, T, KV, H // KV, D)  # query heads kv*G + g share kv head kv
        s = torch.einsum("btkgd,bskd->bkgts", q, k) / D ** 0.5
        p = s.masked_fill(~causal, float("-inf")).softmax(-1)
        o = torch.einsum("bkgts,bskd->btkgd", p, val).reshape(B, T, H * D)
        x = x + lin(o, l["wo"], l["bo"], v["o_bias"])
        h = norm(x, l["n2"])
        mb = v["mlp_bias"]
        x = x + lin(F.silu(lin(h, l["w1"], l["b1"], mb)) * lin(h, l["w3"], l["b3"], mb), l["w2"], l["b2"], mb)
    return norm(x, w["norm"]) @ (w["emb"] if v["tie"] else w["head"]).T


def permute(t, n_heads):
    """interleaved -> rotate_half row order (transformers' convert_llama_weights_to_hf permute)."""
    rest = t.shape[1:]
    return t.reshape(n_heads, -1, 2, *rest).transpose(1, 2).reshape(-1, *rest)


def save_hf(v, w, D, out, dtype):
    H, KV, C = v["num_attention_heads"], v["num_key_value_heads"], v["hidden_size"]
    cfg = {"model_type": v["model_type"], "vocab_size": V, "hidden_size": C, "intermediate_size": I,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "rms_norm_eps": EPS,
           "rope_theta": v["theta"], "max_position_embeddings": 64, "hidden_act": "silu",
           "tie_word_embeddings": v["tie"]}
    if v["head_dim"]:
        cfg["head_dim"] = v["head_dim"]
    if v["model_type"] == "llama":
        cfg.update(attention_bias=v["o_bias"], mlp_bias=v["mlp_bias"])
    if v["model_type"] == "mistral":
        cfg["sliding_window"] = 4096
    t = {"model.embed_tokens.weight": w["emb"], "model.norm.weight": w["norm"]}
    if not v["tie"]:
        t["lm_head.weight"] = w["head"]
    for i, l in enumerate(w["layers"]):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": l["n1"], p + "post_attention_layernorm.weight": l["n2"],
                  p + "self_attn.q_proj.weight": permute(l["wq"], H), p + "self_attn.k_proj.weight": permute(l["wk"], KV),
                  p + "self_attn.v_proj.weight": l["wv"], p + "self_attn.o_proj.weight": l["wo"],
                  p + "mlp.gate_proj.weight": l["w1"], p + "mlp.up_proj.weight": l["w3"],
                  p + "mlp.down_proj.weight": l["w2"]})
        if v["qkv_bias"]:
            t.update({p + "self_attn.q_proj.bias": permute(l["bq"], H), p + "self_attn.k_proj.bias": permute(l["bk"], KV),
                      p + "self_attn.v_proj.bias": l["bv"]})
        if v["o_bias"]:
            t[p + "self_attn.o_proj.bias"] = l["bo"]
        if v["mlp_bias"]:
            t.update({p + "mlp.gate_proj.bias": l["b1"], p + "mlp.up_proj.bias": l["b3"], p + "mlp.down_proj.bias": l["b2"]})
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    write_safetensors(os.path.join(out, "model.safetensors"), t, dtype)


def main():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (2, 24), generator=gen)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, v in VARIANTS.items():
            w, D = make_weights(v, gen)
            dtype = "BF16" if name == "mistral" else "F32"
            if dtype == "BF16":  # compare against the bf16-rounded weights the file holds
                w = {k: (x.bfloat16().float() if torch.is_tensor(x) else
                         [{a: b.bfloat16().float() for a, b in l.items()} for l in x]) for k, x in w.items()}
            save_hf(v, w, D, os.path.join(tmp, name), dtype)
            lm = reference.load_model(os.path.join(tmp, name))
            got = reference.forward(lm, ids, torch.ones_like(ids))
            with torch.no_grad():
                want = meta_forward(v, w, D, ids)
            d = (got - want).abs().max().item()
            ok = d < 2e-5
            failures += [] if ok else [name]
            print(f"{'ok  ' if ok else 'FAIL'} {name:8s} ({dtype}) max|reference - meta-style| = {d:.3g}"
                  f"  (logit scale {want.abs().max().item():.3g})")
    print("ALL OK" if not failures else f"FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
