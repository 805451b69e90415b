#!/usr/bin/python3
"""NF4 quantization written from the QLoRA paper (Dettmers et al. 2023, arXiv:2305.14314, section 3 and
appendix E) and bitsandbytes' documented storage layout, in numpy/torch float32 -- without bitsandbytes.

  NF4 values   quantiles of N(0, 1): Phi^-1 at probabilities evenly spaced from 0.9677083 down to 1/2 (8 positive,
               7 negative, plus an exact 0), divided by the largest; checked against the published table.
  blockwise    blocks of `blocksize` values, absmax m per block (float32), x * float32(1/m) clipped to [-1, 1],
               nearest table value; a value exactly on the float32 midpoint of two neighbours takes the lower code.
  packing      code of element 2j in the high nibble of byte j, element 2j+1 in the low nibble.
  double quant absmax - mean(absmax) quantized blockwise (256) to 8 bits with the signed dynamic map.

Usage: /usr/bin/python3 nf4_reference.py REQUEST.json   ->  one JSON line on stdout.

Request {"cases": [{"name": ..., "kind": ..., ...}]}; kinds:
  "tables"      -> nf4_derived (float32, as bitsandbytes derives it), nf4_derived_double, nf4_published,
                   dynamic_map (double, rounded once to float32), dynamic_map_torch32 (built in float32 as bnb does)
  "quantize"    {"values": raw little-endian float32 file, "blocksize": 64, "double_quant": false}
                -> packed, absmax | (scale_codes, scale_absmax, scale_offset), dequantized   (binary as base64)
  "checkpoint"  {"model": HF model dir, "blocksize": 64}
                -> per 2-D weight of the decoder layers: relative error ||W - deq(q(W))||_F / ||W||_F, with and
                   without double quantization, and the parameter count
  "halves"      -> float32 of all 65536 f16 bit patterns and all 65536 bf16 bit patterns (torch's conversions)
"""
from __future__ import annotations

import base64
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import read_safetensors  # noqa: E402  (the reference's own safetensors reader)

F32 = np.float32

# QLoRA appendix E / bitsandbytes get_4bit_type("nf4").
PUBLISHED_NF4 = np.array(
    [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
     -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
     0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
     0.7229568362236023, 1.0],
    dtype=F32,
)
OFFSET = 0.9677083


def normal_quantile(p: torch.Tensor) -> torch.Tensor:
    """Phi^-1(p) = sqrt(2) erfinv(2p - 1), in float64."""
    return math.sqrt(2.0) * torch.erfinv(2.0 * p.double() - 1.0)


def derive_nf4(float32: bool) -> np.ndarray:
    dtype = torch.float32 if float32 else torch.float64

    def quantiles_down(count: int) -> torch.Tensor:
        p = torch.linspace(OFFSET, 0.5, count + 1, dtype=dtype)[:-1]
        q = normal_quantile(p)
        return q.float() if float32 else q

    pos, neg = quantiles_down(8), -quantiles_down(7)
    v = torch.cat([neg, torch.zeros(1, dtype=pos.dtype), pos])
    return torch.sort(v / pos.max()).values.numpy()


def dynamic_map(torch32: bool) -> np.ndarray:
    """Signed dynamic map: per decade 10^(e-6), e = 0..6, midpoints of 2^e + 1 points evenly spaced in [0.1, 1], +-."""
    values = [0.0, 1.0]
    for e in range(7):
        n = 2**e + 1
        if torch32:
            b = torch.linspace(0.1, 1, n, dtype=torch.float32)
            means = ((b[:-1] + b[1:]) / 2.0 * 10 ** (e - 6)).tolist()
        else:
            b = np.linspace(0.1, 1.0, n)  # float64
            means = list((b[:-1] + b[1:]) / 2.0 * (1 / 10 ** (6 - e)))
        values += means + [-m for m in means]
    assert len(values) == 256
    return np.sort(np.array(values, dtype=F32))


def midpoints(table: np.ndarray) -> np.ndarray:
    return ((table[:-1].astype(np.float64) + table[1:]) / 2).astype(F32)


def nearest_codes(scaled: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest table value; on a float32 midpoint the lower one (searchsorted 'left' = # midpoints < x)."""
    codes = np.searchsorted(midpoints(table), scaled, side="left").astype(np.uint8)
    # Sanity: the chosen value is nearest in exact arithmetic, up to the rounding of the midpoints to float32.
    err = np.abs(scaled.astype(np.float64) - table[codes])
    best = np.min(np.abs(scaled.astype(np.float64)[:, None] - table[None, :].astype(np.float64)), axis=1)
    assert np.all(err - best <= 1e-7), "a code is not the nearest table value"
    return codes


def quantize_blockwise(x: np.ndarray, table: np.ndarray, blocksize: int):
    n = x.size
    blocks = -(-n // blocksize)
    padded = np.zeros(blocks * blocksize, dtype=F32)
    padded[:n] = x
    rows = padded.reshape(blocks, blocksize)
    absmax = np.abs(rows).max(axis=1).astype(F32)
    inverse = (F32(1.0) / np.maximum(absmax, F32(1e-38))).astype(F32)
    scaled = np.clip((rows * inverse[:, None]).astype(F32), F32(-1), F32(1)).reshape(-1)[:n]
    return nearest_codes(scaled, table), absmax


def dequantize_blockwise(codes: np.ndarray, absmax: np.ndarray, table: np.ndarray, blocksize: int) -> np.ndarray:
    scale = np.repeat(absmax, blocksize)[: codes.size]
    return (table[codes] * scale).astype(F32)


def pack(codes: np.ndarray) -> np.ndarray:
    c = codes if codes.size % 2 == 0 else np.concatenate([codes, np.zeros(1, np.uint8)])
    return ((c[0::2] << 4) | c[1::2]).astype(np.uint8)


def quantize_nf4(x: np.ndarray, blocksize: int, double_quant: bool) -> dict:
    codes, absmax = quantize_blockwise(x, PUBLISHED_NF4, blocksize)
    out = {"packed": pack(codes), "absmax": absmax}
    scales = absmax
    if double_quant:
        dmap = dynamic_map(torch32=False)
        offset = F32(np.mean(absmax.astype(np.float64)))
        scale_codes, scale_absmax = quantize_blockwise((absmax - offset).astype(F32), dmap, 256)
        scales = (dequantize_blockwise(scale_codes, scale_absmax, dmap, 256) + offset).astype(F32)
        out = {"packed": out["packed"], "scale_codes": scale_codes, "scale_absmax": scale_absmax, "scale_offset": offset}
    out["dequantized"] = dequantize_blockwise(codes, scales, PUBLISHED_NF4, blocksize)
    return out


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode()


def floats(a: np.ndarray) -> list:
    return [float(v) for v in a]


def case_tables(_: dict) -> dict:
    return {
        "nf4_derived": floats(derive_nf4(float32=True)),
        "nf4_derived_double": floats(derive_nf4(float32=False)),
        "nf4_published": floats(PUBLISHED_NF4),
        "dynamic_map": floats(dynamic_map(torch32=False)),
        "dynamic_map_torch32": floats(dynamic_map(torch32=True)),
    }


def case_quantize(c: dict) -> dict:
    x = np.fromfile(c["values"], dtype="<f4").astype(F32)
    q = quantize_nf4(x, int(c.get("blocksize", 64)), bool(c.get("double_quant", False)))
    return {k: (float(v) if np.isscalar(v) else b64(v)) for k, v in q.items()}


def case_checkpoint(c: dict) -> dict:
    tensors = read_safetensors(os.path.join(c["model"], "model.safetensors"))
    blocksize = int(c.get("blocksize", 64))
    layers = {}
    for name, t in sorted(tensors.items()):
        if ".layers." not in name or t.dim() != 2:
            continue
        w = t.float().numpy().reshape(-1)
        norm = np.linalg.norm(w.astype(np.float64))
        row = {"params": int(w.size)}
        for key, dq in (("nf4", False), ("nf4_dq", True)):
            deq = quantize_nf4(w, blocksize, dq)["dequantized"]
            row[key] = float(np.linalg.norm(w.astype(np.float64) - deq) / norm)
        layers[name] = row
    return {"layers": layers}


def case_halves(_: dict) -> dict:
    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)  # wraps to the same 16-bit patterns
    return {
        "f16": b64(bits.view(torch.float16).float().numpy()),
        "bf16": b64(bits.view(torch.bfloat16).float().numpy()),
    }


KINDS = {"tables": case_tables, "quantize": case_quantize, "checkpoint": case_checkpoint, "halves": case_halves}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        request = json.load(f)
    results, failed = {}, False
    for i, c in enumerate(request["cases"]):
        name = c.get("name", f"case{i}")
        try:
            results[name] = KINDS[c["kind"]](c)
        except Exception as e:  # report per case, keep going
            results[name] = {"error": f"{type(e).__name__}: {e}"}
            failed = True
    print(json.dumps({"torch_version": torch.__version__, "results": results}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
