#!/usr/bin/python3
"""Self-test of reference.py's GPT-2 path against a GPT-2 written in a different style.

Builds a tiny random GPT-2 from torch building blocks (nn.MultiheadAttention with a packed
in-projection, nn.LayerNorm, nn.GELU(approximate="tanh")), writes it as an HF directory
(config.json + model.safetensors, Conv1D [in, out] weights, "transformer." prefix) to
a temporary directory (or --out DIR), then runs reference.py's CLI on it and compares:
logits, right-padded batch loss, greedy, the key spelling without "transformer." plus a sharded
index, activation "gelu" (exact), and the safetensors F16/BF16 conversion.

Usage: /usr/bin/python3 test/reference/make_gpt2_check.py [--out DIR]    (exit 1 on mismatch)
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
sys.path.insert(0, HERE)
import reference  # noqa: E402

CFG = dict(vocab_size=101, n_positions=48, n_embd=32, n_head=4, n_layer=2)
TOL = 2e-5


class Block(nn.Module):
    def __init__(self, C, H, act):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn = nn.MultiheadAttention(C, H, batch_first=True)  # in_proj_weight [3C, C] = q;k;v
        self.fc, self.proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.act = act

    def forward(self, x, pad):  # x [B,T,C], pad [B,T] True = padding
        T = x.shape[1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = may not attend
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=future, key_padding_mask=pad, need_weights=False)[0]
        return x + self.proj(self.act(self.fc(self.ln2(x))))


class TinyGPT2(nn.Module):
    def __init__(self, act):
        super().__init__()
        C = CFG["n_embd"]
        self.tok = nn.Embedding(CFG["vocab_size"], C)
        self.pos = nn.Embedding(CFG["n_positions"], C)
        self.blocks = nn.ModuleList([Block(C, CFG["n_head"], act) for _ in range(CFG["n_layer"])])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, ids, mask=None):  # -> logits [B,T,V]
        mask = torch.ones_like(ids) if mask is None else mask
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x, mask == 0)
        return torch.einsum("btc,vc->btv", self.ln_f(x), self.tok.weight)

    def hf_tensors(self, prefix="transformer."):
        """HF GPT-2 names; Conv1D weights are [in, out] (= nn.Linear weight transposed)."""
        t = {"wte.weight": self.tok.weight, "wpe.weight": self.pos.weight,
             "ln_f.weight": self.ln_f.weight, "ln_f.bias": self.ln_f.bias}
        for i, b in enumerate(self.blocks):
            t.update({
                f"h.{i}.ln_1.weight": b.ln1.weight, f"h.{i}.ln_1.bias": b.ln1.bias,
                f"h.{i}.attn.c_attn.weight": b.attn.in_proj_weight.T, f"h.{i}.attn.c_attn.bias": b.attn.in_proj_bias,
                f"h.{i}.attn.c_proj.weight": b.attn.out_proj.weight.T, f"h.{i}.attn.c_proj.bias": b.attn.out_proj.bias,
                f"h.{i}.ln_2.weight": b.ln2.weight, f"h.{i}.ln_2.bias": b.ln2.bias,
                f"h.{i}.mlp.c_fc.weight": b.fc.weight.T, f"h.{i}.mlp.c_fc.bias": b.fc.bias,
                f"h.{i}.mlp.c_proj.weight": b.proj.weight.T, f"h.{i}.mlp.c_proj.bias": b.proj.bias,
            })
        return {prefix + k: v.detach().contiguous() for k, v in t.items()}


def write_safetensors(path, tensors, dtype="F32"):
    header, chunks, off = {}, [], 0
    for name, t in tensors.items():
        if dtype == "F32":
            raw = t.float().numpy().astype("<f4").tobytes()
        elif dtype == "F16":
            raw = t.float().numpy().astype("<f2").tobytes()
        else:  # BF16 via torch's own rounding
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def build(act_name, seed):
    torch.manual_seed(seed)
    act = nn.GELU(approximate="tanh") if act_name == "gelu_new" else nn.GELU()
    m = TinyGPT2(act)
    with torch.no_grad():  # larger than GPT-2's init so attention and logits are far from uniform
        for name, p in m.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if "ln" in name and "weight" in name else 0))
    return m.eval()


def save_hf(m, out, act_name, prefix="transformer.", shards=1, extra=None):
    os.makedirs(out, exist_ok=True)
    cfg = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_inner=None, activation_function=act_name,
               layer_norm_epsilon=1e-5, scale_attn_weights=True, tie_word_embeddings=True,
               bos_token_id=0, eos_token_id=CFG["vocab_size"] - 1, **CFG)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = m.hf_tensors(prefix)
    tensors.update(extra or {})
    if shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
        return
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(os.path.join(out, fname), part)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


def run_reference(request, workdir):
    path = os.path.join(workdir, "request.json")
    with open(path, "w") as f:
        json.dump(request, f)
    p = subprocess.run([sys.executable, os.path.join(HERE, "reference.py"), path], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"reference.py failed ({p.returncode}): {p.stdout} {p.stderr}")
    return json.loads(p.stdout)["results"]


def main():
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else tempfile.mkdtemp(prefix="gpt2-check-")
    out = os.path.abspath(out)
    failures = []

    def check(label, diff, tol=TOL):
        ok = diff <= tol
        print(f"{'ok  ' if ok else 'FAIL'} {label}: {diff:.3g}")
        if not ok:
            failures.append(label)

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, CFG["vocab_size"], (3, 20), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0  # right padding
    mask[2, 7:] = 0
    padded = ids.masked_fill(mask == 0, 0)

    m = build("gelu_new", seed=0)
    save_hf(m, out, "gelu_new")
    with tempfile.TemporaryDirectory() as tmp:
        # same weights, bare key names + GPT-2's stored causal-mask buffers, 3 shards
        C, T = CFG["n_embd"], CFG["n_positions"]
        buffers = {f"h.{i}.attn.bias": torch.ones(T, T).tril()[None, None] for i in range(CFG["n_layer"])}
        save_hf(m, os.path.join(tmp, "bare"), "gelu_new", prefix="", shards=3, extra=buffers)
        m_exact = build("gelu", seed=2)
        save_hf(m_exact, os.path.join(tmp, "exact"), "gelu")

        cases = [
            {"name": "logits", "model": out, "kind": "logits", "input_ids": ids.tolist()},
            {"name": "logits_bare", "model": os.path.join(tmp, "bare"), "kind": "logits", "input_ids": ids.tolist()},
            {"name": "logits_exact", "model": os.path.join(tmp, "exact"), "kind": "logits", "input_ids": ids[0].tolist(),
             "positions": [0, 7, -1]},
            {"name": "padded", "model": out, "kind": "logits", "input_ids": padded.tolist(), "attention_mask": mask.tolist()},
            {"name": "loss", "model": out, "kind": "loss", "input_ids": padded.tolist(), "attention_mask": mask.tolist(),
             "per_token": True},
            {"name": "greedy", "model": out, "kind": "greedy", "input_ids": ids[0, :5].tolist(), "max_new_tokens": 12,
             "eos": False},
        ]
        res = run_reference({"cases": cases}, tmp)

    with torch.no_grad():
        want = m(ids)
        print(f"     (logit scale {want.abs().max().item():.3g})")
        check("logits (3x20, tanh gelu) vs nn.MultiheadAttention model",
              (torch.tensor(res["logits"]["logits"]) - want).abs().max().item())
        check("logits, bare keys + attn.bias buffers + 3 shards, identical",
              (torch.tensor(res["logits_bare"]["logits"]) - torch.tensor(res["logits"]["logits"])).abs().max().item(), 0)
        check("logits, activation 'gelu' (erf), positions [0,7,-1]",
              (torch.tensor(res["logits_exact"]["logits"]) - m_exact(ids[:1])[0, [0, 7, -1]]).abs().max().item())
        # right padding: valid positions equal the unpadded rows' logits
        got = torch.tensor(res["padded"]["logits"])
        d = max((got[b, :n] - m(ids[b : b + 1, :n])[0]).abs().max().item() for b, n in enumerate(mask.sum(1).tolist()))
        check("right-padded batch vs each row alone (valid positions)", d)
        # loss: float64 log-softmax of the independent model, labels = ids with padding -100
        logp = torch.log_softmax(m(padded, mask).double(), -1)
        labels = padded.masked_fill(mask == 0, -100)
        nll = [-logp[b, t, labels[b, t + 1]].item() for b in range(3) for t in range(19) if labels[b, t + 1] != -100]
        r = res["loss"]
        check("loss tokens", abs(r["tokens"] - len(nll)), 0)
        check("nll_sum vs float64 sum", abs(r["nll_sum"] - sum(nll)), 1e-4)
        check("loss vs float64 mean", abs(r["loss"] - sum(nll) / len(nll)), 1e-5)
        flat = [x for row in r["nll"] for x in row if x is not None]
        check("per-token nll", max(abs(a - b) for a, b in zip(flat, nll)), 1e-5)
        seq = ids[0, :5].tolist()
        for _ in range(12):
            seq.append(int(m(torch.tensor([seq]))[0, -1].argmax()))
        check("greedy: number of differing ids", sum(a != b for a, b in zip(seq[5:], res["greedy"]["new_ids"])), 0)

    # safetensors dtype conversion: F16 and BF16 files read back as torch's own conversion
    with tempfile.TemporaryDirectory() as tmp:
        a = torch.randn(5, 7, generator=gen) * 100
        for dt, tdt, extra in (("F16", torch.float16, [1e-7, 65504.0, 0.1]), ("BF16", torch.bfloat16, [1e-30, -3.3e38, 0.1])):
            t = {"a": a, "b": torch.tensor(extra)}
            write_safetensors(os.path.join(tmp, "x.safetensors"), t, dt)
            back = reference.read_safetensors(os.path.join(tmp, "x.safetensors"))
            d = max((back[k] - t[k].to(tdt).float()).abs().max().item() for k in t)
            check(f"safetensors {dt} read == torch .to({tdt}).float()", d, 0)

    n_bytes = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"fixture {out}: {n_bytes} bytes")
    print("ALL OK" if not failures else f"FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
