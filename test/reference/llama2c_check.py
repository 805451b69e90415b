#!/usr/bin/python3
"""Cross-check reference.py against llama2.c's own forward pass.

Reimplements llama2.c's run.c forward (token by token, KV cache, INTERLEAVED rope, weights as
W[out][in] row-major) in numpy on the original stories260K.bin, and compares its logits with
reference.py's HF-convention forward on the converted ../shared/models/stories260K directory.
Also decodes llama2.c-greedy from BOS with tok512.bin to show the published sample.

Usage: /usr/bin/python3 test/reference/llama2c_check.py [LLAMA2C_DIR] [HF_DIR]
Exits 1 if the max abs logit difference exceeds 1e-4.
"""
import os
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA2C_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../shared/models/llama2c_stories260K")
HF_DIR = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "../../../shared/models/stories260K")


def read_llama2c(path):
    """llama2.c legacy (v0) checkpoint: 7 x int32 header, then float32 arrays."""
    with open(path, "rb") as f:
        blob = f.read()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", blob[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv_heads * hs
    data = np.frombuffer(blob, dtype="<f4", offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        a = data[pos : pos + n].reshape(shape)
        pos += n
        return a

    w = dict(
        tok=take(vocab, dim),
        rms_att=take(n_layers, dim),
        wq=take(n_layers, dim, dim),  # [layer][out][in]
        wk=take(n_layers, kv_dim, dim),
        wv=take(n_layers, kv_dim, dim),
        wo=take(n_layers, dim, dim),
        rms_ffn=take(n_layers, dim),
        w1=take(n_layers, hidden, dim),
        w2=take(n_layers, dim, hidden),
        w3=take(n_layers, hidden, dim),
        rms_final=take(dim),
    )
    take(seq_len, hs // 2)  # freq_cis_real (legacy, unused by run.c)
    take(seq_len, hs // 2)  # freq_cis_imag
    w["cls"] = w["tok"] if shared else take(vocab, dim)
    assert pos == data.size, f"{path}: {data.size - pos} trailing floats (layout mismatch)"
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
               vocab=vocab, seq_len=seq_len, shared=shared)
    return cfg, w


def llama2c_forward(cfg, w, tokens, dtype=np.float32):
    """run.c's forward(), one position at a time; returns logits [T, vocab]."""
    w = {k: v.astype(dtype) for k, v in w.items()}
    dim, L, H, KV = cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"]
    hs = dim // H
    kv_mul = H // KV
    key_cache = np.zeros((L, len(tokens), KV * hs), dtype)
    value_cache = np.zeros((L, len(tokens), KV * hs), dtype)

    def rmsnorm(x, weight):
        ss = dtype(np.sum(x * x) / len(x) + 1e-5)
        return weight * (x / np.sqrt(ss))

    out = []
    for pos, token in enumerate(tokens):
        x = w["tok"][token].copy()
        for l in range(L):
            xb = rmsnorm(x, w["rms_att"][l])
            q = w["wq"][l] @ xb
            k = w["wk"][l] @ xb
            v = w["wv"][l] @ xb
            # interleaved rope: rotate pairs (2i, 2i+1); frequency depends on position within the head
            for i in range(0, dim, 2):
                freq = 1.0 / (10000.0 ** ((i % hs) / hs))
                fcr, fci = dtype(np.cos(pos * freq)), dtype(np.sin(pos * freq))
                for vec in ((q, k) if i < KV * hs else (q,)):
                    v0, v1 = vec[i], vec[i + 1]
                    vec[i], vec[i + 1] = v0 * fcr - v1 * fci, v0 * fci + v1 * fcr
            key_cache[l, pos], value_cache[l, pos] = k, v
            att_out = np.zeros(dim, dtype)
            for h in range(H):
                qh = q[h * hs : (h + 1) * hs]
                kvh = h // kv_mul
                keys = key_cache[l, : pos + 1, kvh * hs : (kvh + 1) * hs]  # [pos+1, hs]
                scores = keys @ qh / dtype(np.sqrt(hs))
                scores = np.exp(scores - scores.max())
                scores /= scores.sum()
                att_out[h * hs : (h + 1) * hs] = scores @ value_cache[l, : pos + 1, kvh * hs : (kvh + 1) * hs]
            x = x + w["wo"][l] @ att_out
            xb = rmsnorm(x, w["rms_ffn"][l])
            hb = w["w1"][l] @ xb
            hb = hb * (1.0 / (1.0 + np.exp(-hb))) * (w["w3"][l] @ xb)
            x = x + w["w2"][l] @ hb
        out.append(w["cls"] @ rmsnorm(x, w["rms_final"]))
    return np.stack(out)


def read_tokenizer(path, vocab):
    """llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 len, bytes."""
    with open(path, "rb") as f:
        blob = f.read()
    off, pieces = 4, []
    for _ in range(vocab):
        _score, n = struct.unpack("<fi", blob[off : off + 8])
        pieces.append(blob[off + 8 : off + 8 + n])
        off += 8 + n
    return pieces


def decode(pieces, ids):
    """llama2.c's decode(): leading space stripped after BOS, <0xXX> byte tokens."""
    out, prev = b"", 1
    for t in ids:
        p = pieces[t]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if p.startswith(b"<0x") and p.endswith(b">") and len(p) == 6:
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = t
    return out.decode("utf-8", errors="replace")


def main():
    cfg, w = read_llama2c(os.path.join(LLAMA2C_DIR, "stories260K.bin"))
    print("llama2.c header:", cfg)
    lm = reference.load_model(HF_DIR)
    sequences = [
        [1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 294, 426],  # <s> Once upon a time, there was a cat.
        [1],
        list(range(1, 120, 3)),
        [1] + [int(t) for t in np.random.default_rng(0).integers(3, 512, size=63)],
    ]
    worst32 = worst64 = 0.0
    for ids in sequences:
        x = torch.tensor([ids])
        ref = reference.forward(lm, x, torch.ones_like(x))[0].numpy()
        d32 = float(np.abs(llama2c_forward(cfg, w, ids, np.float32) - ref).max())
        d64 = float(np.abs(llama2c_forward(cfg, w, ids, np.float64) - ref).max())
        worst32, worst64 = max(worst32, d32), max(worst64, d64)
        print(f"len {len(ids):3d}: max|llama2c(f32) - reference| = {d32:.3g}   "
              f"max|llama2c(f64) - reference| = {d64:.3g}   (logit scale {np.abs(ref).max():.3g})")

    # llama2.c greedy from BOS (full recompute each step) should give the published sample
    pieces = read_tokenizer(os.path.join(LLAMA2C_DIR, "tok512.bin"), cfg["vocab"])
    ids = [1]
    for _ in range(40):
        ids.append(int(np.argmax(llama2c_forward(cfg, w, ids)[-1])))
    ref_new = reference.run_case({"model": HF_DIR, "kind": "greedy", "input_ids": [1], "max_new_tokens": 40},
                                 os.getcwd(), {})["new_ids"]
    print("llama2.c greedy from BOS:", repr(decode(pieces, ids[1:])))
    print("reference greedy == llama2.c greedy:", ref_new == ids[1:])
    ok = worst32 < 1e-4 and worst64 < 1e-4 and ref_new == ids[1:]
    print(f"max abs logit diff: {worst32:.3g} (llama2.c in float32), {worst64:.3g} (in float64) ->",
          "OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
