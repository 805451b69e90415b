#!/usr/bin/python3
"""Self-check of lora_reference.py (PEFT LoRA + Trainer-style training in the reference).

  1. gradients of the training step (token-weighted over micro-batches) vs central finite differences on a
     float64 copy: LoRA, DoRA (+ rsLoRA, rank/alpha patterns), lora_bias, bias="all", modules_to_save,
     GPT-2 Conv1D, and full fine-tuning with tied embeddings; the float32 step-0 grad_norm vs float64;
  2. save -> load round trip (own safetensors writer, header checked independently, CLI lora_train + lora_loss);
  3. a B = 0 adapter (and DoRA with magnitude = ||W||_row) gives exactly the base model's loss / logits;
     the adapted forward equals the PEFT-merged weight (W + s·B·A, DoRA m/||W + s·B·A|| · (W + s·B·A));
  4. target_modules (list / regex / all-linear / exact names), layers_to_transform / layers_pattern,
     exclude_modules, modules_to_save, rank_pattern / alpha_pattern pick what PEFT's code would (hand-derived);
  5. learning-rate schedules, token weighting across micro-batches, AdamW's first step, weight-decay groups.

Usage: /usr/bin/python3 test/reference/lora_check.py [--model DIR]    (default ../shared/models/stories260K)
Exit 1 on any failure.
"""
import copy
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep test/reference free of __pycache__
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
import lora_reference as L  # noqa: E402

FAILED = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILED.append(what)


# ----------------------------------------------------------------------------
# helpers

def random_adapter(lm, cfg, seed, scale_a=0.2, scale_b=0.2, magnitude_jitter=0.1):
    """Adapter tensors for cfg on lm with seeded non-zero values (DoRA magnitude = ||W + s·B·A||_row · (1 ± jitter))."""
    g = torch.Generator().manual_seed(seed)
    plan = L.plan_adapter(cfg, lm.model, lm.config["model_type"])
    mods = {m.name: m for m in L.hf_modules(lm.model)}
    out = {}
    for t in plan.targets:
        w = mods[t.name].module.weight.detach()
        w_oi = w.t() if t.kind == "conv1d" else w
        o, i = w_oi.shape
        k = L.PEFT_PREFIX + t.name
        A = torch.randn(t.r, i, generator=g) * scale_a
        B = torch.randn(o, t.r, generator=g) * scale_b
        out[k + ".lora_A.weight"], out[k + ".lora_B.weight"] = A, B
        if cfg.get("lora_bias"):
            out[k + ".lora_B.bias"] = torch.randn(o, generator=g) * 0.1
        if cfg.get("use_dora"):
            norm = torch.linalg.norm(w_oi + t.scaling * (B @ A), dim=1)
            out[k + ".lora_magnitude_vector"] = norm * (1 + magnitude_jitter * torch.randn(o, generator=g))
    return out


def write_adapter(d, cfg, tensors):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, L.CONFIG_NAME), "w") as f:
        json.dump(cfg, f)
    L.write_safetensors(os.path.join(d, L.WEIGHTS_NAME), tensors)


def as_double(lm):
    return R.LoadedModel(copy.deepcopy(lm.model).double(), lm.config, lm.eos_token_ids)


def micro_batches(lm, seed, vocab):
    g = torch.Generator().manual_seed(seed)
    ids1 = torch.randint(0, vocab, (2, 10), generator=g)
    mask1 = torch.ones_like(ids1)
    mask1[1, 7:] = 0  # right padding
    labels1 = ids1.masked_fill(mask1 == 0, -100)
    labels1[0, 3] = -100  # an ignored label inside a row
    ids2 = torch.randint(0, vocab, (1, 7), generator=g)
    return [L.parse_micro_batch({"input_ids": ids1.tolist(), "attention_mask": mask1.tolist(),
                                 "labels": labels1.tolist()}, lm),
            L.parse_micro_batch({"input_ids": ids2.tolist()}, lm)]


def fd_check(name, model, trainables, mbs, n_coords=6, h=1e-5, seed=0):
    """Analytic gradient of the step loss vs central differences, a few coordinates of every trainable tensor.

    DoRA detaches ||W + s·B·A||_row (PEFT, DoRA paper §4.3): the finite differences are taken with that norm
    frozen at its current value, which is the function whose gradient PEFT (and the reference) computes."""
    params = [t.param for t in trainables]
    loss, grads, _ = L.step_loss_and_grads(model, params, mbs)
    dora = [m for m in model.modules() if isinstance(m, L.LoraLinear) and m.magnitude is not None]
    with torch.no_grad():
        for m in dora:
            w = m.base_weight_out_in()
            m.weight_norm_override = torch.linalg.norm(w + m.scaling * (m.lora_B @ m.lora_A), dim=1).clone()
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for t, p, gr in zip(trainables, params, grads):
        flat = p.data.view(-1)
        for _ in range(n_coords):
            j = int(torch.randint(0, flat.numel(), (1,), generator=g))
            old = float(flat[j])
            flat[j] = old + h
            lp = L.mean_loss(model, mbs)
            flat[j] = old - h
            lm_ = L.mean_loss(model, mbs)
            flat[j] = old
            fd = (lp - lm_) / (2 * h)
            an = float(gr.view(-1)[j]) if gr is not None else 0.0
            err = abs(fd - an) / max(1e-3, abs(fd), abs(an))
            worst = max(worst, err)
    for m in dora:
        m.weight_norm_override = None
    check(worst < 1e-6, f"{name}: analytic vs finite-difference gradient, worst rel err {worst:.2e}"
                        f" ({len(params)} tensors, step loss {loss:.6f})")
    return loss, grads


def make_tiny_gpt2(d, seed=0):
    cfg = {"model_type": "gpt2", "vocab_size": 61, "n_positions": 32, "n_embd": 16, "n_layer": 2, "n_head": 2,
           "activation_function": "gelu_new", "tie_word_embeddings": True, "eos_token_id": 60}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.manual_seed(seed)
    m = R.GPT2LMHeadModel(R.GPT2Config.from_hf(cfg))
    tensors = {}
    for n, p in m.named_parameters():
        if n.startswith("lm_head"):
            continue
        v = torch.randn(p.shape) * (0.3 if p.dim() > 1 else 0.1)
        if n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n.endswith("ln_f.weight"):
            v = 1 + v
        tensors["transformer." + n] = v
    L.write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    return R.load_model(d)


def run_cli(request, base_dir):
    path = os.path.join(base_dir, "request.json")
    with open(path, "w") as f:
        json.dump(request, f)
    p = subprocess.run([sys.executable, os.path.join(HERE, "reference.py"), path], capture_output=True, text=True)
    try:
        return json.loads(p.stdout)["results"]
    except ValueError:
        print(p.stdout, p.stderr)
        raise


def names_of(lm, cfg):
    return [(t.name, t.r, t.alpha, t.scaling) for t in L.plan_adapter(cfg, lm.model, lm.config["model_type"]).targets]


def expect_error(fn, what, contains):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        check(contains in str(e), f"{what}: raises ({type(e).__name__}: {str(e)[:90]})")
        return
    check(False, f"{what}: should raise")


# ----------------------------------------------------------------------------

def main():
    model_dir = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K"))
    if "--model" in sys.argv:
        model_dir = sys.argv[sys.argv.index("--model") + 1]
    lm = R.load_model(model_dir)
    V = lm.config["vocab_size"]
    tmp = tempfile.mkdtemp(prefix="lora_check_")
    gpt = make_tiny_gpt2(os.path.join(tmp, "gpt2-tiny"))
    P = "model.layers"

    # ---------------------------------------------------------------- 4. targeting
    print("== targeting (PEFT matching rules)")
    qv = names_of(lm, {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    check([n for n, *_ in qv] == [f"{P}.{i}.self_attn.{m}" for i in range(5) for m in ("q_proj", "v_proj")]
          and all(s == 2.0 for *_, s in qv), "list suffixes q_proj,v_proj -> 10 modules, scaling 8/4")
    check(len(names_of(lm, {"target_modules": "all-linear"})) == 35
          and all(not n.startswith("lm_head") for n, *_ in names_of(lm, {"target_modules": "all-linear"})),
          "all-linear -> 7 linears x 5 layers, lm_head excluded")
    check([n for n, *_ in names_of(lm, {"target_modules": None})] == [f"{P}.{i}.self_attn.{m}" for i in range(5)
                                                                       for m in ("q_proj", "v_proj")],
          "target_modules null -> PEFT's llama default [q_proj, v_proj]")
    rx = names_of(lm, {"target_modules": r".*\.layers\.[13]\.(self_attn\.(k|o)_proj|mlp\.down_proj)"})
    check([n for n, *_ in rx] == [f"{P}.{i}.{m}" for i in (1, 3) for m in ("self_attn.k_proj", "self_attn.o_proj",
                                                                           "mlp.down_proj")],
          "regex string: re.fullmatch on the full name (layers 1, 3: k, o, down)")
    expect_error(lambda: names_of(lm, {"target_modules": "q_proj"}), "regex 'q_proj' (fullmatch, not search)",
                 "not found")
    expect_error(lambda: names_of(lm, {"target_modules": ["proj"]}), "list ['proj'] (needs '.proj' suffix)",
                 "not found")
    expect_error(lambda: names_of(lm, {"target_modules": ["mlp"]}), "list ['mlp'] matches a container",
                 "not supported")
    expect_error(lambda: names_of(lm, {"target_modules": ["embed_tokens"]}), "embedding target", "embedding")
    expect_error(lambda: names_of(lm, {"target_modules": "q_proj", "layers_to_transform": [0]}),
                 "layers_to_transform with a regex target_modules", "cannot be used")
    lt = names_of(lm, {"target_modules": ["q_proj"], "layers_to_transform": [0, 4]})
    check([n for n, *_ in lt] == [f"{P}.0.self_attn.q_proj", f"{P}.4.self_attn.q_proj"],
          "layers_to_transform [0, 4]")
    lt = names_of(lm, {"target_modules": ["q_proj", "lm_head"], "layers_to_transform": 2, "layers_pattern": "layers"})
    check([n for n, *_ in lt] == [f"{P}.2.self_attn.q_proj", "lm_head"],
          "layers_to_transform 2 + layers_pattern 'layers' (lm_head is an exact name: kept despite no layer index)")
    check([n for n, *_ in names_of(lm, {"target_modules": ["lm_head"], "layers_to_transform": [0]})] == ["lm_head"],
          "['lm_head'] + layers_to_transform [0] -> lm_head (exact-name branch skips the layer filter)")
    expect_error(lambda: names_of(lm, {"target_modules": ["head"]}), "['head'] does not match 'lm_head' (no dot)",
                 "not found")
    expect_error(lambda: names_of(lm, {"target_modules": ["q_proj"], "layers_to_transform": [0],
                                       "layers_pattern": "h"}), "layers_pattern 'h' on a Llama", "not found")
    lt = names_of(lm, {"target_modules": [f"{P}.1.self_attn.q_proj", "v_proj"], "layers_to_transform": [0]})
    check([n for n, *_ in lt] == [f"{P}.0.self_attn.v_proj", f"{P}.1.self_attn.q_proj"],
          "an exact full name in target_modules bypasses layers_to_transform")
    ex = names_of(lm, {"target_modules": ["q_proj", "v_proj"], "exclude_modules": ["v_proj"]})
    check(len(ex) == 5 and all(n.endswith("q_proj") for n, *_ in ex), "exclude_modules list")
    ex = names_of(lm, {"target_modules": ["q_proj"], "exclude_modules": r".*\.layers\.[0-3]\..*"})
    check([n for n, *_ in ex] == [f"{P}.4.self_attn.q_proj"], "exclude_modules regex")
    plan = L.plan_adapter({"target_modules": ["q_proj", "lm_head"], "modules_to_save": ["lm_head"]}, lm.model, "llama")
    check(len(plan.targets) == 5 and plan.modules_to_save == ["lm_head"],
          "modules_to_save lm_head: excluded from LoRA targets, wrapped instead")
    plan = L.plan_adapter({"target_modules": ["q_proj"], "modules_to_save": ["norm"]}, lm.model, "llama")
    check(plan.modules_to_save == [f"{P}.{i}.{n}" for i in range(5) for n in ("input_layernorm",
                                                                              "post_attention_layernorm")]
          + ["model.norm"], "modules_to_save 'norm' matches by plain endswith (also *_layernorm)")
    rp = {"target_modules": ["q_proj", "v_proj"], "r": 4, "lora_alpha": 8,
          "rank_pattern": {"v_proj": 6, f"layers.2.self_attn.v_proj": 3, "1.self_attn.q_proj": 2,
                           "s.3.self_attn.q_proj": 5},
          "alpha_pattern": {r"layers\.[34]\.self_attn\.q_proj": 16}}
    got = {n: (r, a, s) for n, r, a, s in names_of(lm, rp)}
    want = {}
    for i in range(5):
        want[f"{P}.{i}.self_attn.q_proj"] = (2 if i == 1 else 4, 16 if i in (3, 4) else 8)
        want[f"{P}.{i}.self_attn.v_proj"] = (6, 8)  # 'v_proj' comes first in the dict, so it wins for layer 2
    check(all(got[n][:2] == want[n] for n in want) and all(got[n][2] == got[n][1] / got[n][0] for n in got),
          "rank_pattern/alpha_pattern: first matching key in dict order, key must start the name or follow '.'"
          " ('s.3...' does not match)")
    rs = names_of(lm, dict(rp, use_rslora=True))
    check(all(abs(s - a / math.sqrt(r)) < 1e-15 for _, r, a, s in rs), "use_rslora: scaling = alpha / sqrt(r)")
    gp = L.plan_adapter({"target_modules": None}, gpt.model, "gpt2")
    check([t.name for t in gp.targets] == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
          and gp.fan_in_fan_out, "gpt2: default [c_attn], Conv1D -> fan_in_fan_out true in the saved config")
    gp = L.plan_adapter({"target_modules": ["c_proj", "lm_head"]}, gpt.model, "gpt2")
    check([t.name for t in gp.targets] == [f"transformer.h.{i}.{m}.c_proj" for i in range(2) for m in ("attn", "mlp")]
          + ["lm_head"] and not gp.fan_in_fan_out,
          "gpt2: c_proj (attn + mlp) and lm_head (nn.Linear, flips fan_in_fan_out back to false)")

    # ---------------------------------------------------------------- 3. B = 0, merge equivalence
    print("== B = 0 and merged-weight equivalence")
    ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 280, 294, 426]
    x = torch.tensor([ids])
    one = torch.ones_like(x)
    base_logits = R.forward(lm, x, one)
    for label, cfg in (("lora", {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}),
                       ("dora", {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "use_dora": True})):
        t = random_adapter(lm, cfg, seed=1)
        for k in t:
            if k.endswith("lora_B.weight"):
                t[k].zero_()
            if k.endswith("lora_magnitude_vector"):
                pass
        if cfg.get("use_dora"):  # magnitude = ||W||_row exactly as PEFT initialises it
            mods = {m.name: m for m in L.hf_modules(lm.model)}
            for k in t:
                if k.endswith("lora_magnitude_vector"):
                    name = k[len(L.PEFT_PREFIX):-len(".lora_magnitude_vector")]
                    t[k] = torch.linalg.norm(mods[name].module.weight.detach() + 0.0, dim=1)
        a = L.build_adapted(lm, None, cfg=cfg, tensors=t)
        out = R.forward(R.LoadedModel(a.model, lm.config, []), x, one)
        check(torch.equal(out, base_logits), f"{label}: B = 0 adapter gives the base logits bit for bit")
    for mdl, label in ((as_double(lm), "llama"), (as_double(gpt), "gpt2")):  # float64: only the math differs
        xx = x if label == "llama" else torch.tensor([[5, 9, 1, 33, 2, 59, 7]])
        for dora in (False, True):
            cfg = {"r": 3, "lora_alpha": 5, "target_modules": "all-linear", "use_dora": dora}
            t = random_adapter(lm if label == "llama" else gpt, cfg, seed=2)
            a = L.build_adapted(mdl, None, cfg=cfg, tensors=t)
            got = R.forward(R.LoadedModel(a.model, mdl.config, []), xx, torch.ones_like(xx))
            merged = copy.deepcopy(mdl.model)
            mods = {m.name: m for m in L.hf_modules(merged)}
            with torch.no_grad():
                for name, layer in a.layers.items():
                    w = mods[name].module.weight
                    w_oi = w.t() if layer.kind == "conv1d" else w
                    new = w_oi + layer.scaling * (layer.lora_B @ layer.lora_A)
                    if dora:
                        new = (layer.magnitude / torch.linalg.norm(new, dim=1))[:, None] * new
                    w.copy_(new.t() if layer.kind == "conv1d" else new)
            want = R.forward(R.LoadedModel(merged, mdl.config, []), xx, torch.ones_like(xx))
            err = float((got - want).abs().max())
            check(err < 1e-10, f"{label} {'dora' if dora else 'lora'}: adapted forward == PEFT-merged weights"
                              f" (max abs logit diff {err:.1e})")

    # ---------------------------------------------------------------- 1. gradients
    print("== gradients vs finite differences (float64)")
    lm64, gpt64 = as_double(lm), as_double(gpt)
    mbs = micro_batches(lm64, 3, V)
    for label, cfg in (
        ("lora q,v", {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}),
        ("dora+rslora+patterns", {"r": 4, "lora_alpha": 8, "use_dora": True, "use_rslora": True,
                                  "target_modules": ["q_proj", "o_proj", "down_proj"],
                                  "rank_pattern": {"down_proj": 2}, "alpha_pattern": {"o_proj": 3}}),
        ("lora_bias+modules_to_save lm_head", {"r": 2, "lora_alpha": 4, "lora_bias": True,
                                               "target_modules": ["k_proj", "up_proj"], "modules_to_save": ["lm_head"]}),
    ):
        a = L.build_adapted(lm64, None, cfg=cfg, tensors=random_adapter(lm, cfg, seed=4))
        fd_check(f"llama {label}", a.model, a.trainables, mbs)
    gmbs = micro_batches(gpt64, 5, 61)
    for label, cfg in (
        ("conv1d lora", {"r": 2, "lora_alpha": 4, "target_modules": ["c_attn", "c_fc"]}),
        ("conv1d dora + bias=all + modules_to_save ln_f", {"r": 2, "lora_alpha": 4, "use_dora": True,
                                                           "target_modules": ["c_attn", "c_proj"], "bias": "all",
                                                           "modules_to_save": ["ln_f"]}),
        ("conv1d lora bias=lora_only", {"r": 3, "lora_alpha": 3, "target_modules": ["c_fc"], "bias": "lora_only"}),
    ):
        a = L.build_adapted(gpt64, None, cfg=cfg, tensors=random_adapter(gpt, cfg, seed=6))
        fd_check(f"gpt2 {label}", a.model, a.trainables, gmbs)
    for label, m64 in (("llama", lm64), ("gpt2", gpt64)):
        model, tr = L.full_trainables(m64)
        check(model.lm_head.weight is (model.wte.weight if label == "gpt2" else model.embed_tokens.weight),
              f"full {label}: lm_head tied to the embedding Parameter")
        fd_check(f"full {label} (all base parameters)", model, tr, mbs if label == "llama" else gmbs, n_coords=3)

    # float32 lora_train step-0 grad_norm vs float64
    cfg = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    tens = random_adapter(lm, cfg, seed=4)
    a64 = L.build_adapted(lm64, None, cfg=cfg, tensors=tens)
    _, g64, _ = L.step_loss_and_grads(a64.model, [t.param for t in a64.trainables], mbs)
    n64 = L.total_grad_norm(g64)
    a32 = L.build_adapted(lm, None, cfg=cfg, tensors=tens)
    log = L.train(a32.model, a32.trainables, [micro_batches(lm, 3, V)], {"lr": 0.0})
    check(abs(log[0]["grad_norm"] - n64) / n64 < 1e-4,
          f"float32 training grad_norm {log[0]['grad_norm']:.6f} vs float64 {n64:.6f}")

    # ---------------------------------------------------------------- 5. trainer semantics
    print("== trainer semantics")
    a = L.build_adapted(lm64, None, cfg=cfg, tensors=tens)
    params = [t.param for t in a.trainables]
    g = torch.Generator().manual_seed(9)
    rows = torch.randint(0, V, (3, 9), generator=g)
    mask = torch.ones_like(rows)
    mask[2, 5:] = 0
    mk = lambda r, m: L.parse_micro_batch({"input_ids": r.tolist(), "attention_mask": m.tolist()}, lm64)  # noqa
    l_split, g_split, n_split = L.step_loss_and_grads(a.model, params, [mk(rows[:2], mask[:2]), mk(rows[2:], mask[2:])])
    l_one, g_one, n_one = L.step_loss_and_grads(a.model, params, [mk(rows, mask)])
    gd = max(float((x - y).abs().max()) for x, y in zip(g_split, g_one))
    check(n_split == n_one == 8 + 8 + 4 and abs(l_split - l_one) < 1e-12 and gd < 1e-12,
          f"micro-batches [2 rows | 1 padded row] == one batch of 3 rows: tokens {n_split}, loss diff "
          f"{abs(l_split - l_one):.1e}, grad diff {gd:.1e} (token-weighted, not mean of means)")
    mean_of_means = 0.5 * (L.mean_loss(a.model, [mk(rows[:2], mask[:2])]) + L.mean_loss(a.model, [mk(rows[2:],
                                                                                                    mask[2:])]))
    check(abs(mean_of_means - l_one) > 1e-4, "…and differs from the mean of micro-batch means")
    lin = [L.lr_lambda("linear", s, 2, 10) for s in range(11)]
    check(lin == [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0], f"linear warmup 2 total 10: {lin}")
    cos = [L.lr_lambda("cosine", s, 1, 5) for s in range(5)]
    want_cos = [0.0, 1.0, 0.5 * (1 + math.cos(math.pi * 0.25)), 0.5, 0.5 * (1 + math.cos(math.pi * 0.75))]
    check(all(abs(x - y) < 1e-15 for x, y in zip(cos, want_cos)), f"cosine warmup 1 total 5: {cos}")
    con = [L.lr_lambda("constant", s, 3, 10) for s in range(5)]
    check(con == [0.0, 1 / 3, 2 / 3, 1.0, 1.0], f"constant warmup 3: {con}")
    # AdamW step 1: p -= lr * (m̂ / (sqrt(v̂) + eps)) with m̂ = g, v̂ = g², after p *= 1 - lr * wd
    a = L.build_adapted(lm64, None, cfg=cfg, tensors=tens)
    before = [t.param.detach().clone() for t in a.trainables]
    one_step = [micro_batches(lm64, 3, V)]
    _, g0, _ = L.step_loss_and_grads(a.model, [t.param for t in a.trainables], one_step[0])
    log = L.train(a.model, a.trainables, one_step, {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-8})
    err = max(float((t.param.detach() - (p0 * (1 - 0.01 * 0.1) - 0.01 * gg / (gg.abs() + 1e-8))).abs().max())
              for t, p0, gg in zip(a.trainables, before, g0))
    check(err < 1e-12 and log[0]["lr"] == 0.01, f"AdamW first step (decoupled decay, bias correction): err {err:.1e}")
    model, tr = L.full_trainables(lm)
    nd = sorted(t.decay_name for t in tr if not L.decays(t))
    check(nd == sorted([f"{P}.{i}.{n}.weight" for i in range(5) for n in ("input_layernorm",
                                                                          "post_attention_layernorm")]
                       + ["model.norm.weight"]), "full llama: no weight decay exactly for the RMSNorm weights")
    model, tr = L.full_trainables(gpt)
    nd = [t.decay_name for t in tr if not L.decays(t)]
    check(all(n.endswith(".bias") or ".ln_" in n for n in nd) and len(nd) == 2 * (4 + 4) + 2,
          f"full gpt2: no weight decay for biases and LayerNorm ({len(nd)} tensors)")
    a = L.build_adapted(gpt, None, cfg={"target_modules": ["c_attn"], "use_dora": True, "bias": "all"},
                        tensors=random_adapter(gpt, {"target_modules": ["c_attn"], "use_dora": True}, seed=1))
    dec = {t.key: L.decays(t) for t in a.trainables}
    check(dec["base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector"]
          and dec["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]
          and not dec["base_model.model.transformer.h.0.attn.c_attn.base_layer.bias"]
          and not dec["base_model.model.transformer.h.0.mlp.c_fc.bias"],
          "lora: A/B/magnitude decayed, biases not; bias keys '<module>.base_layer.bias' for wrapped modules")

    # ---------------------------------------------------------------- 2. save / load round trip
    print("== save -> load round trip")
    ad_dir, out_dir = os.path.join(tmp, "adapter"), os.path.join(tmp, "trained")
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "use_dora": True,
           "target_modules": ["q_proj", "v_proj"], "modules_to_save": ["lm_head"], "rank_pattern": {"v_proj": 2}}
    write_adapter(ad_dir, cfg, random_adapter(lm, cfg, seed=11))
    g = torch.Generator().manual_seed(12)
    steps = [[{"input_ids": torch.randint(0, V, (2, 12), generator=g).tolist()}] for _ in range(3)]
    res = run_cli({"cases": [
        {"name": "train", "model": model_dir, "kind": "lora_train", "adapter": ad_dir, "steps": steps, "lr": 0.01,
         "schedule": "linear", "warmup_steps": 1, "total_steps": 3, "weight_decay": 0.01, "max_grad_norm": 0.5,
         "save_to": out_dir},
        {"name": "again", "model": model_dir, "kind": "lora_loss", "adapter": out_dir,
         "input_ids": steps[-1][0]["input_ids"]}]}, tmp)
    tr = res["train"]
    check(tr["final_loss"] == res["again"]["loss"],
          f"CLI: loss of the saved adapter == final_loss of lora_train ({tr['final_loss']})")
    check([s["lr"] for s in tr["steps"]] == [0.0, 0.01, 0.005], f"lrs used {[s['lr'] for s in tr['steps']]}")
    check(tr["steps"][0]["grad_norm"] > 0.5, "grad_norm is reported before clipping")
    with open(os.path.join(out_dir, L.WEIGHTS_NAME), "rb") as f:
        blob = f.read()
    (hl,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hl])
    keys = sorted(k for k in header if k != "__metadata__")
    want_keys = sorted([f"base_model.model.{P}.{i}.self_attn.{m}.{s}" for i in range(5) for m in ("q_proj", "v_proj")
                        for s in ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")]
                       + ["base_model.model.lm_head.weight"])
    offs = [header[k]["data_offsets"] for k in keys]
    check(hl % 8 == 0 and header["__metadata__"] == {"format": "pt"} and keys == want_keys
          and all(header[k]["dtype"] == "F32" for k in keys) and offs[0][0] == 0
          and all(a_[1] == b_[0] for a_, b_ in zip(offs, offs[1:])) and offs[-1][1] == len(blob) - 8 - hl,
          "safetensors: 8-aligned header, format pt, F32, contiguous offsets, PEFT key names")
    check(list(header[f"base_model.model.{P}.0.self_attn.v_proj.lora_A.weight"]["shape"]) == [2, 64]
          and list(header[f"base_model.model.{P}.0.self_attn.v_proj.lora_B.weight"]["shape"]) == [32, 2]
          and list(header[f"base_model.model.{P}.0.self_attn.v_proj.lora_magnitude_vector"]["shape"]) == [32],
          "shapes: lora_A [r, in], lora_B [out, r], magnitude [out] (rank_pattern r=2 on v_proj)")
    with open(os.path.join(out_dir, L.CONFIG_NAME)) as f:
        saved_cfg = json.load(f)
    check(saved_cfg["rank_pattern"] == {"v_proj": 2} and saved_cfg["use_dora"] and saved_cfg["inference_mode"]
          and saved_cfg["target_modules"] == ["q_proj", "v_proj"] and saved_cfg["modules_to_save"] == ["lm_head"],
          "adapter_config.json round trip")
    a1 = L.build_adapted(lm, out_dir)
    a2 = L.build_adapted(lm, out_dir)
    check(all(torch.equal(x.param, y.param) for x, y in zip(a1.trainables, a2.trainables))
          and len(a1.trainables) == len(want_keys), "reloaded tensors")
    # in-process: train -> save -> load gives the same parameters bit for bit
    a = L.build_adapted(lm, ad_dir)
    L.train(a.model, a.trainables, [[L.parse_micro_batch(mb, lm) for mb in s] for s in steps], {"lr": 0.003})
    L.save_adapter(a, os.path.join(tmp, "t2"), model_dir)
    b = L.build_adapted(lm, os.path.join(tmp, "t2"))
    check(all(x.key == y.key and torch.equal(x.param, y.param) for x, y in zip(a.trainables, b.trainables)),
          "in-process save -> load: identical parameters")
    # full fine-tuning: saved model directory reloads to the same final loss, lm_head stays tied
    full_dir = os.path.join(tmp, "full")
    res = run_cli({"cases": [
        {"name": "ft", "model": model_dir, "kind": "full_train", "steps": steps, "lr": 0.003, "save_to": full_dir},
        {"name": "again", "model": full_dir, "kind": "loss", "input_ids": steps[-1][0]["input_ids"]}]}, tmp)
    check(res["ft"]["final_loss"] == res["again"]["loss"] and res["ft"]["trainable_parameters"] == sum(
        p.numel() for p in lm.model.parameters()) - lm.model.lm_head.weight.numel(),
        f"full_train: saved model reloads to final_loss {res['ft']['final_loss']}, tied head counted once")
    with open(os.path.join(full_dir, "model.safetensors"), "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(hl))
    check("lm_head.weight" not in hdr and "model.embed_tokens.weight" in hdr, "full_train: tied lm_head not saved")
    # dropout guard
    cfg_d = dict(cfg, lora_dropout=0.1)
    write_adapter(os.path.join(tmp, "drop"), cfg_d, random_adapter(lm, cfg_d, seed=1))
    res = run_cli({"cases": [{"name": "d", "model": model_dir, "kind": "lora_train",
                              "adapter": os.path.join(tmp, "drop"), "steps": steps[:1], "lr": 0.01}]}, tmp)
    check("lora_dropout must be 0" in res["d"].get("error", ""), "lora_train refuses lora_dropout > 0")

    print(f"\n{len(FAILED)} failure(s)" if FAILED else "\nall checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
