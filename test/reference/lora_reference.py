"""PEFT LoRA semantics and a Hugging Face Trainer-style training loop for reference.py.

Written from PEFT's published behaviour (huggingface/peft: tuners/lora/{config,layer,model,dora,variants}.py,
tuners/tuners_utils.py, utils/{save_and_load,other}.py) and transformers' Trainer / optimization.py, without
those packages. Imported lazily by reference.py for the request kinds "lora_loss", "lora_train", "full_train"
and for "loss" / "logits" / "greedy" cases carrying an "adapter". See README.md for the formats.

Module names are those of the transformers model (what PEFT matches against):
  Llama family: model.embed_tokens, model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj,
                model.layers.N.{input,post_attention}_layernorm, model.norm, lm_head
  GPT-2:        transformer.{wte,wpe,ln_f}, transformer.h.N.attn.{c_attn,c_proj}, transformer.h.N.mlp.{c_fc,c_proj},
                transformer.h.N.ln_{1,2}, lm_head
Adapter file keys: "base_model.model." + module name + ".lora_A.weight" etc. (PEFT's names, adapter name stripped).
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import reference as ref

PEFT_PREFIX = "base_model.model."
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"

# PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (used when target_modules is null)
DEFAULT_TARGETS = {"llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
                   "gpt2": ["c_attn"]}

# adapter_config.json as written by save_adapter: these keys always (source values win), other source keys kept
CONFIG_DEFAULTS: Dict[str, Any] = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "base_model_name_or_path": None,
    "revision": None,
    "inference_mode": True,
    "r": 8,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
    "target_modules": None,
    "exclude_modules": None,
    "bias": "none",
    "use_rslora": False,
    "fan_in_fan_out": False,
    "modules_to_save": None,
    "init_lora_weights": True,
    "layers_to_transform": None,
    "layers_pattern": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "use_dora": False,
    "lora_bias": False,
    "layer_replication": None,
    "megatron_config": None,
    "megatron_core": "megatron.core",
    "loftq_config": {},
    "auto_mapping": None,
}

# config keys whose non-default value changes the computation in ways the reference does not implement
UNSUPPORTED_IF_SET = ("layer_replication", "megatron_config", "target_parameters", "trainable_token_indices",
                      "use_qalora", "alora_invocation_tokens", "arrow_config", "use_bdlora", "velora_config",
                      "monteclora_config", "kasa_config", "lora_ga_config", "ensure_weight_tying", "mica")
# init_lora_weights values that rewrite the base weights (PiSSA / OLoRA / LoftQ / CorDA / ...)
_BASE_MUTATING_INIT = re.compile(r"^(pissa.*|olora|loftq|corda.*|mica|lora_ga)$", re.IGNORECASE)


# ----------------------------------------------------------------------------
# safetensors writer (F32 only; reader is reference.read_safetensors)

def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """u64 LE header length | JSON header (space-padded to a multiple of 8) | little-endian data, sorted by name."""
    header: Dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = tensors[name].detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
        data = arr.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# transformers module names of a reference model

@dataclass
class HFModule:
    name: str                  # transformers module name, e.g. "model.layers.0.self_attn.q_proj"
    kind: str                  # "linear" | "conv1d" | "embedding" | "layernorm" | "other"
    module: Optional[nn.Module]  # the reference module (None for parameterless transformers modules)
    ref_name: Optional[str]    # its name in the reference model
    has_params: bool


def arch_of(model: nn.Module) -> str:
    return "gpt2" if isinstance(model, ref.GPT2LMHeadModel) else "llama"


def hf_param_prefix(model: nn.Module) -> str:
    return "transformer." if arch_of(model) == "gpt2" else "model."


def hf_name(model: nn.Module, ref_name: str) -> str:
    if ref_name == "lm_head" or ref_name.startswith("lm_head."):
        return ref_name
    return hf_param_prefix(model) + ref_name if ref_name else hf_param_prefix(model)[:-1]


def _kind(m: Optional[nn.Module]) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, ref.Conv1D):
        return "conv1d"
    if isinstance(m, nn.Embedding):
        return "embedding"
    if isinstance(m, nn.LayerNorm):
        return "layernorm"
    return "other"


def hf_modules(model: nn.Module) -> List[HFModule]:
    """named_modules() of the transformers model (minus the root), mapped onto the reference modules."""
    out = [HFModule(hf_name(model, ""), "other", None, None, True)]  # LlamaModel / GPT2Model
    for name, m in model.named_modules():
        if name:
            out.append(HFModule(hf_name(model, name), _kind(m), m, name, any(True for _ in m.parameters())))
    # parameterless transformers modules the reference has no module for (matter only for odd targets)
    if arch_of(model) == "gpt2":
        extra = ["transformer.drop"]
        for i in range(len(model.h)):
            extra += [f"transformer.h.{i}.attn.attn_dropout", f"transformer.h.{i}.attn.resid_dropout",
                      f"transformer.h.{i}.mlp.act", f"transformer.h.{i}.mlp.dropout"]
    else:
        extra = ["model.rotary_emb"] + [f"model.layers.{i}.mlp.act_fn" for i in range(len(model.layers))]
    out += [HFModule(n, "other", None, None, False) for n in extra]
    return out


# ----------------------------------------------------------------------------
# adapter config and PEFT's matching rules

@dataclass
class LoraTarget:
    name: str          # transformers module name
    kind: str          # "linear" | "conv1d"
    r: int
    alpha: float
    scaling: float


@dataclass
class AdapterPlan:
    config: Dict[str, Any]
    targets: List[LoraTarget]
    modules_to_save: List[str]   # transformers module names wrapped as trainable copies
    fan_in_fan_out: bool         # the value PEFT leaves in the config after injection


def load_adapter_config(adapter_dir: str) -> Dict[str, Any]:
    with open(os.path.join(adapter_dir, CONFIG_NAME)) as f:
        cfg = json.load(f)
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{adapter_dir}: peft_type {cfg.get('peft_type')!r} is not LORA")
    return cfg


def _check_config(cfg: Dict[str, Any]) -> None:
    for key in UNSUPPORTED_IF_SET:
        if cfg.get(key):
            raise NotImplementedError(f"adapter_config {key}={cfg[key]!r} is not implemented in the reference")
    init = cfg.get("init_lora_weights", True)
    if isinstance(init, str) and _BASE_MUTATING_INIT.match(init):
        raise NotImplementedError(f"init_lora_weights={init!r} rewrites the base weights; not implemented")
    if cfg.get("bias", "none") not in ("none", "all", "lora_only"):
        raise ValueError(f"bias must be 'none', 'all' or 'lora_only', not {cfg.get('bias')!r}")
    tm = cfg.get("target_modules")
    if isinstance(tm, str) and (cfg.get("layers_to_transform") is not None or cfg.get("layers_pattern") is not None):
        # LoraConfig.__post_init__
        raise ValueError("`layers_to_transform` / `layers_pattern` cannot be used when `target_modules` is a str.")
    if cfg.get("use_dora") and cfg.get("lora_bias"):
        raise ValueError("lora_bias=True is not supported for DoRA (PEFT raises too)")


def _matches_exclude(exclude: Any, key: str) -> bool:
    if not exclude:
        return False
    if isinstance(exclude, str):
        return re.fullmatch(exclude, key) is not None
    return key in exclude or any(key.endswith("." + e) for e in exclude)


def check_target_module_exists(cfg: Dict[str, Any], targets: Any, key: str) -> str:
    """PEFT's check_target_module_exists: "match" | "excluded" | "no"."""
    if _matches_exclude(cfg.get("exclude_modules"), key):
        return "excluded"
    # adapters never target modules_to_save (regex: the names appear as whole dotted components)
    for m in cfg.get("modules_to_save") or []:
        if re.match(rf"(^|.*\.){m}($|\..*)", key):
            return "excluded"
    if isinstance(targets, str):
        return "match" if re.fullmatch(targets, key) else "no"
    if key in targets:  # an exact full name: layers_to_transform is NOT applied on this branch
        return "match"
    found = any(key.endswith("." + t) for t in targets)
    layer_indexes = cfg.get("layers_to_transform")
    using_indexes = layer_indexes is not None and (len(layer_indexes) != 0 if isinstance(layer_indexes, list) else True)
    if using_indexes and found:
        pattern = cfg.get("layers_pattern")
        idx = None
        if pattern is None or len(pattern) == 0:
            idx = re.match(r".*?\.[^.]*\.(\d+)\.", key)  # first numbered component
        else:
            for p in [pattern] if isinstance(pattern, str) else pattern:
                idx = re.match(rf".*?\.{p}\.(\d+)\.", key)
                if idx is not None:
                    break
        if idx is None:
            found = False
        else:
            i = int(idx.group(1))
            found = i == layer_indexes if isinstance(layer_indexes, int) else i in layer_indexes
    return "match" if found else "no"


def get_pattern_key(pattern_keys: Sequence[str], key: str) -> Optional[str]:
    """PEFT's get_pattern_key: the first pattern (in dict order) p with re.match(r"(.*\\.)?(p)$", key)."""
    for p in pattern_keys:
        if re.match(rf"(.*\.)?({p})$", key):
            return p
    return None


def plan_adapter(cfg: Dict[str, Any], model: nn.Module, model_type: str) -> AdapterPlan:
    """Which modules PEFT would wrap (and with which r / alpha), and which it would make modules_to_save."""
    _check_config(cfg)
    modules = hf_modules(model)
    targets = cfg.get("target_modules")
    if targets is None:
        if model_type not in DEFAULT_TARGETS:
            raise ValueError(f"no default target_modules for model_type {model_type!r}")
        targets = list(DEFAULT_TARGETS[model_type])
    if isinstance(targets, str) and targets.lower() == "all-linear":
        # every nn.Linear / Conv1D except the output embedding, as a set of full names
        targets = [m.name for m in modules if m.kind in ("linear", "conv1d") and m.name != "lm_head"]
    if not isinstance(targets, str):
        targets = list(targets)

    r0, alpha0 = int(cfg.get("r", 8)), cfg.get("lora_alpha", 8)
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    rslora = bool(cfg.get("use_rslora", False))
    fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
    out: List[LoraTarget] = []
    excluded = unmatched = 0
    for m in modules:
        res = check_target_module_exists(cfg, targets, m.name)
        if res == "excluded":
            excluded += 1
            continue
        if res == "no":
            unmatched += 1
            continue
        if m.kind == "embedding":
            raise NotImplementedError(f"LoRA on the embedding {m.name} is not implemented in the reference")
        if m.kind not in ("linear", "conv1d"):
            raise ValueError(f"Target module {m.name} is not supported (PEFT: only Linear / Conv1D / Embedding / "
                             "Conv / MultiheadAttention)")
        rk = get_pattern_key(list(rank_pattern), m.name)
        ak = get_pattern_key(list(alpha_pattern), m.name)
        r = int(rank_pattern[rk]) if rk is not None else r0
        alpha = alpha_pattern[ak] if ak is not None else alpha0
        if r <= 0:
            raise ValueError(f"`r` should be a positive integer value but the value passed is {r}")
        scaling = alpha / math.sqrt(r) if rslora else alpha / r
        out.append(LoraTarget(m.name, m.kind, r, alpha, scaling))
        # dispatch_default flips the (shared) config's fan_in_fan_out to the layer type, with a warning
        fan_in_fan_out = m.kind == "conv1d"
    if not out:
        if excluded and not unmatched:
            raise ValueError("All modules were excluded. Check target_modules, exclude_modules and modules_to_save.")
        raise ValueError(f"Target modules {targets} not found in the base model.")

    # modules_to_save: PEFT's _set_trainable matches named_modules() of the PeftModel by plain endswith
    mts: List[str] = []
    names = set(t.name for t in out)
    for mname in cfg.get("modules_to_save") or []:
        for key in ("", "base_model", "base_model.model"):
            if key.endswith(mname):
                raise NotImplementedError(f"modules_to_save {mname!r} matches the whole model ({key!r})")
        lora_internals = [f"{PEFT_PREFIX}{t}.{s}" for t in names for s in (
            "base_layer", "lora_A", "lora_A.default", "lora_B", "lora_B.default", "lora_dropout",
            "lora_dropout.default", "lora_magnitude_vector", "lora_magnitude_vector.default", "lora_embedding_A",
            "lora_embedding_B")]
        if any(k.endswith(mname) for k in lora_internals):
            raise NotImplementedError(f"modules_to_save {mname!r} matches PEFT-internal LoRA modules")
        for m in modules:
            if (PEFT_PREFIX + m.name).endswith(mname) and m.name not in mts:
                mts.append(m.name)
    for a in mts:
        for b in mts + list(names):
            if b != a and b.startswith(a + "."):
                raise NotImplementedError(f"modules_to_save {a} contains another wrapped module {b}")
    return AdapterPlan(cfg, out, mts, fan_in_fan_out)


# ----------------------------------------------------------------------------
# the wrapped layer

class LoraLinear(nn.Module):
    """PEFT lora.Linear (adapter "default", dropout 0 / eval): y = base(x) + lora_B(lora_A(x)) * scaling.

    A is [r, in] and B is [out, r] for nn.Linear and for GPT-2's Conv1D (fan_in_fan_out) alike. DoRA (PEFT's
    DoraLinearLayer): with W as [out, in], norm = ||W + scaling * (B @ A)||_row (B @ A detached, norm detached),
    s = magnitude / norm, y = base(x) + (s - 1) * (base(x) - bias) + s * lora_B(lora_A(x)) * scaling.
    """

    def __init__(self, base: nn.Module, kind: str, target: LoraTarget, use_dora: bool, lora_bias: bool):
        super().__init__()
        self.base, self.kind, self.target = base, kind, target
        w = base.weight
        out_f, in_f = (w.shape[1], w.shape[0]) if kind == "conv1d" else (w.shape[0], w.shape[1])
        self.in_features, self.out_features = in_f, out_f
        dt = w.dtype
        self.lora_A = nn.Parameter(torch.zeros(target.r, in_f, dtype=dt))
        self.lora_B = nn.Parameter(torch.zeros(out_f, target.r, dtype=dt))
        self.lora_B_bias = nn.Parameter(torch.zeros(out_f, dtype=dt)) if lora_bias else None
        self.magnitude = nn.Parameter(torch.zeros(out_f, dtype=dt)) if use_dora else None
        self.scaling = target.scaling
        self.weight_norm_override: Optional[torch.Tensor] = None  # lora_check: freeze the DoRA norm for FD

    @property
    def weight(self) -> torch.Tensor:  # the base weight (reference.forward reads lm_head.weight.shape)
        return self.base.weight

    def base_weight_out_in(self) -> torch.Tensor:
        w = self.base.weight
        return w.t() if self.kind == "conv1d" else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)
        lora = F.linear(F.linear(x, self.lora_A), self.lora_B, self.lora_B_bias)
        if self.magnitude is None:
            return result + lora * self.scaling
        weight = self.base_weight_out_in()
        lora_weight = (self.lora_B @ self.lora_A).detach()
        weight_norm = torch.linalg.norm(weight + self.scaling * lora_weight, dim=1).detach()
        if self.weight_norm_override is not None:
            weight_norm = self.weight_norm_override
        mag_norm_scale = (self.magnitude / weight_norm).view(1, -1)
        bias = getattr(self.base, "bias", None)
        base_result = result - bias if bias is not None else result
        return result + ((mag_norm_scale - 1) * base_result + mag_norm_scale * lora * self.scaling)


@dataclass
class Trainable:
    key: Optional[str]       # adapter file key ("base_model.model...."), None for full fine-tuning
    decay_name: str          # the name HF Trainer's weight-decay rule sees
    no_decay_module: bool    # inside an nn.LayerNorm
    param: nn.Parameter


@dataclass
class AdaptedModel:
    model: nn.Module
    plan: AdapterPlan
    layers: Dict[str, LoraLinear]
    trainables: List[Trainable] = field(default_factory=list)


def _get_parent(root: nn.Module, ref_name: str) -> Tuple[nn.Module, str]:
    parts = ref_name.split(".")
    parent = root
    for p in parts[:-1]:
        parent = getattr(parent, p) if not p.isdigit() else parent[int(p)]
    return parent, parts[-1]


def frozen_structural_copy(model: nn.Module) -> nn.Module:
    """New module objects whose parameters share storage with `model` but are frozen (requires_grad False)."""
    memo = {id(p): nn.Parameter(p.detach(), requires_grad=False) for p in model.parameters()}
    c = copy.deepcopy(model, memo)
    c.eval()
    return c


def _own_param(module: nn.Module, pname: str) -> nn.Parameter:
    """Give `module` its own trainable copy of parameter `pname` (modules_to_save / trainable biases)."""
    p = nn.Parameter(getattr(module, pname).detach().clone(), requires_grad=True)
    setattr(module, pname, p)
    return p


def build_adapted(lm: "ref.LoadedModel", adapter_dir: Optional[str], cfg: Optional[Dict[str, Any]] = None,
                  tensors: Optional[Dict[str, torch.Tensor]] = None, base: Optional[nn.Module] = None
                  ) -> AdaptedModel:
    """Wraps a frozen copy of lm.model with the adapter: config + weights from adapter_dir (or given)."""
    if cfg is None:
        cfg = load_adapter_config(adapter_dir)
    if tensors is None:
        tensors = ref.read_safetensors(os.path.join(adapter_dir, WEIGHTS_NAME))
    model = base if base is not None else frozen_structural_copy(lm.model)
    plan = plan_adapter(cfg, model, lm.config.get("model_type"))
    by_hf = {m.name: m for m in hf_modules(model)}
    use_dora, lora_bias = bool(cfg.get("use_dora")), bool(cfg.get("lora_bias"))
    remaining = dict(tensors)

    def take(key: str, shape: Sequence[int], required: bool = True) -> Optional[torch.Tensor]:
        if key not in remaining:
            if required:
                raise KeyError(f"adapter has no tensor {key!r}")
            return None
        t = remaining.pop(key)
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{key}: adapter shape {tuple(t.shape)} != expected {tuple(shape)}")
        return t

    adapted = AdaptedModel(model, plan, {})
    wrapped = set()
    for t in plan.targets:
        m = by_hf[t.name]
        parent, child = _get_parent(model, m.ref_name)
        layer = LoraLinear(getattr(parent, child), t.kind, t, use_dora, lora_bias)
        k = PEFT_PREFIX + t.name
        with torch.no_grad():
            layer.lora_A.copy_(take(k + ".lora_A.weight", layer.lora_A.shape))
            layer.lora_B.copy_(take(k + ".lora_B.weight", layer.lora_B.shape))
            if layer.lora_B_bias is not None:
                layer.lora_B_bias.copy_(take(k + ".lora_B.bias", layer.lora_B_bias.shape))
            if layer.magnitude is not None:
                layer.magnitude.copy_(take(k + ".lora_magnitude_vector", layer.magnitude.shape))
        for p in (layer.lora_A, layer.lora_B, layer.lora_B_bias, layer.magnitude):
            if p is not None:
                p.requires_grad_(True)
        setattr(parent, child, layer)
        adapted.layers[t.name] = layer
        wrapped.add(t.name)
        adapted.trainables += [Trainable(k + ".lora_A.weight", k + ".lora_A.default.weight", False, layer.lora_A),
                               Trainable(k + ".lora_B.weight", k + ".lora_B.default.weight", False, layer.lora_B)]
        if layer.lora_B_bias is not None:
            adapted.trainables.append(Trainable(k + ".lora_B.bias", k + ".lora_B.default.bias", False,
                                                layer.lora_B_bias))
        if layer.magnitude is not None:
            adapted.trainables.append(Trainable(k + ".lora_magnitude_vector", k + ".lora_magnitude_vector.default"
                                                ".weight", False, layer.magnitude))

    # modules_to_save: a trainable copy of every parameter of the module (untied from the base)
    for name in plan.modules_to_save:
        m = by_hf[name]
        if m.module is None:
            continue
        ln = isinstance(m.module, nn.LayerNorm)
        for sub_name, sub in list(m.module.named_modules()):
            for pname, _ in list(sub.named_parameters(recurse=False)):
                rel = f"{sub_name}.{pname}" if sub_name else pname
                p = _own_param(sub, pname)
                key = f"{PEFT_PREFIX}{name}.{rel}"
                t = take(key, p.shape, required=False)  # absent: PEFT keeps the copy of the base module
                if t is not None:
                    with torch.no_grad():
                        p.copy_(t)
                adapted.trainables.append(Trainable(key, f"{PEFT_PREFIX}{name}.modules_to_save.default.{rel}",
                                                    ln or isinstance(sub, nn.LayerNorm), p))

    # bias="all" / "lora_only": the base biases become trainable and are saved
    bias_mode = cfg.get("bias", "none")
    if bias_mode != "none":
        for m in hf_modules(model):
            if m.module is None or m.name in plan.modules_to_save:
                continue
            if isinstance(m.module, LoraLinear):
                owner, key = m.module.base, f"{PEFT_PREFIX}{m.name}.base_layer.bias"
            elif bias_mode == "all" and not any(m.name.startswith(s + ".") for s in wrapped):
                owner, key = m.module, f"{PEFT_PREFIX}{m.name}.bias"
            else:
                continue
            if isinstance(getattr(owner, "bias", None), nn.Parameter):
                p = _own_param(owner, "bias")
                t = take(key, p.shape, required=False)
                if t is not None:
                    with torch.no_grad():
                        p.copy_(t)
                adapted.trainables.append(Trainable(key, key, False, p))
    if remaining:
        raise ValueError(f"adapter tensors not used by the model: {sorted(remaining)[:5]}")
    model.eval()
    return adapted


def with_adapter(lm: "ref.LoadedModel", adapter_dir: str) -> "ref.LoadedModel":
    adapted = build_adapted(lm, adapter_dir)
    return ref.LoadedModel(adapted.model, lm.config, lm.eos_token_ids)


def adapter_config_to_save(cfg: Dict[str, Any], plan: AdapterPlan, model_dir: str) -> Dict[str, Any]:
    out = dict(CONFIG_DEFAULTS)
    out.update(cfg)
    out["peft_type"] = "LORA"
    out["inference_mode"] = True
    out["fan_in_fan_out"] = plan.fan_in_fan_out
    if out.get("task_type") is None:
        out["task_type"] = "CAUSAL_LM"
    if out.get("base_model_name_or_path") is None:
        out["base_model_name_or_path"] = model_dir
    if isinstance(out.get("target_modules"), list):
        out["target_modules"] = sorted(set(out["target_modules"]))
    elif out.get("target_modules") is None:
        out["target_modules"] = sorted({t.name.rsplit(".", 1)[-1] for t in plan.targets})
    return out


def save_adapter(adapted: AdaptedModel, out_dir: str, model_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    tensors = {t.key: t.param for t in adapted.trainables}
    write_safetensors(os.path.join(out_dir, WEIGHTS_NAME), tensors)
    cfg = adapter_config_to_save(adapted.plan.config, adapted.plan, model_dir)
    with open(os.path.join(out_dir, CONFIG_NAME), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------
# full fine-tuning

def full_trainables(lm: "ref.LoadedModel") -> Tuple[nn.Module, List[Trainable]]:
    """A trainable deep copy of the model; a tied lm_head shares the embedding Parameter again."""
    model = copy.deepcopy(lm.model)
    if getattr(lm.model, "lm_head_tied", False):
        model.lm_head.weight = model.wte.weight if arch_of(model) == "gpt2" else model.embed_tokens.weight
    for p in model.parameters():
        p.requires_grad_(True)
    ln_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    out = [Trainable(None, hf_name(model, n), id(p) in ln_params, p) for n, p in model.named_parameters()]
    model.eval()
    return model, out


def save_full_model(model: nn.Module, lm: "ref.LoadedModel", model_dir: str, out_dir: str) -> None:
    """An HF model directory: config.json (+ generation_config.json) copied, model.safetensors with HF names."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {hf_name(model, n): p for n, p in model.named_parameters()}  # named_parameters drops a tied lm_head
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    for fname in ("config.json", "generation_config.json"):
        src = os.path.join(model_dir, fname)
        if os.path.exists(src):
            with open(src) as f, open(os.path.join(out_dir, fname), "w") as g:
                g.write(f.read())


# ----------------------------------------------------------------------------
# HF Trainer semantics

# transformers' get_decay_parameter_names: no decay for nn.LayerNorm parameters and names matching these
_NO_DECAY = [re.compile(p) for p in (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")]


def decays(t: Trainable) -> bool:
    return not t.no_decay_module and not any(p.search(t.decay_name.lower()) for p in _NO_DECAY)


def lr_lambda(schedule: str, step: int, warmup: int, total: int) -> float:
    """transformers' get_{constant,linear,cosine}_schedule_with_warmup multiplier for 0-based optimizer step."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if schedule in ("constant", "constant_with_warmup"):
        return 1.0
    if schedule == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    if schedule == "cosine":
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    raise ValueError(f"unknown schedule {schedule!r}")


@dataclass
class MicroBatch:
    input_ids: torch.Tensor       # [B,T]
    attention_mask: torch.Tensor  # [B,T]
    labels: torch.Tensor          # [B,T] (unshifted, -100 ignored)


def parse_micro_batch(mb: Dict[str, Any], lm: "ref.LoadedModel") -> MicroBatch:
    ids = ref.as_batch(mb["input_ids"])
    mask = ref.as_batch(mb["attention_mask"]) if mb.get("attention_mask") is not None else torch.ones_like(ids)
    if mask.shape != ids.shape:
        raise ValueError("attention_mask shape != input_ids shape")
    if mb.get("labels") is not None:
        labels = ref.as_batch(mb["labels"])
        if labels.shape != ids.shape:
            raise ValueError("labels shape != input_ids shape")
    else:
        labels = ids.masked_fill(mask == 0, ref.IGNORE_INDEX)
    if ids.shape[1] > lm.model.max_positions:
        raise ValueError(f"sequence length {ids.shape[1]} > max positions {lm.model.max_positions}")
    vocab = lm.model.lm_head.weight.shape[0]
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise ValueError(f"input id out of range [0, {vocab})")
    return MicroBatch(ids, mask, labels)


def counted_tokens(mb: MicroBatch, shifted: bool = True) -> int:
    labels = mb.labels[:, 1:] if shifted else mb.labels
    return int((labels != ref.IGNORE_INDEX).sum())


def micro_batch_nll_sum(model: nn.Module, mb: MicroBatch) -> torch.Tensor:
    """Sum of the per-token NLLs (causal shift, ignore -100), in the model's dtype."""
    logits = model(mb.input_ids, mb.attention_mask)
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, V), mb.labels[:, 1:].reshape(-1),
                           ignore_index=ref.IGNORE_INDEX, reduction="sum")


def step_loss_and_grads(model: nn.Module, params: List[nn.Parameter], mbs: List[MicroBatch],
                        num_items: Optional[int] = None) -> Tuple[float, List[Optional[torch.Tensor]], int]:
    """One optimizer step's loss = sum_mb (nll_sum_mb / N), N = counted tokens of all micro-batches, and its
    gradient, accumulated micro-batch by micro-batch as loss.backward() does under gradient accumulation."""
    n = sum(counted_tokens(mb) for mb in mbs) if num_items is None else num_items
    if n <= 0:
        raise ValueError("optimizer step with no counted tokens")
    grads: List[Optional[torch.Tensor]] = [None] * len(params)
    loss = 0.0
    for mb in mbs:
        l = micro_batch_nll_sum(model, mb) / n
        gs = torch.autograd.grad(l, params, allow_unused=True)
        for i, g in enumerate(gs):
            if g is not None:
                grads[i] = g.detach().clone() if grads[i] is None else grads[i] + g
        loss += float(l.detach())
    return loss, grads, n


@torch.no_grad()
def mean_loss(model: nn.Module, mbs: List[MicroBatch]) -> Optional[float]:
    n = sum(counted_tokens(mb) for mb in mbs)
    if n == 0:
        return None
    return float(sum(float(micro_batch_nll_sum(model, mb) / n) for mb in mbs))


def total_grad_norm(grads: List[torch.Tensor]) -> float:
    """torch.nn.utils.clip_grad_norm_'s total norm (norm of the per-tensor 2-norms)."""
    if not grads:
        return 0.0
    return float(torch.norm(torch.stack([torch.norm(g.detach(), 2.0) for g in grads]), 2.0))


def train(model: nn.Module, trainables: List[Trainable], steps: List[List[MicroBatch]], case: Dict[str, Any],
          ) -> List[Dict[str, Any]]:
    lr = float(case["lr"])
    betas = tuple(case.get("betas", [0.9, 0.999]))
    eps = float(case.get("eps", 1e-8))
    wd = float(case.get("weight_decay", 0.0))
    max_norm = float(case.get("max_grad_norm", 0.0) or 0.0)
    schedule = case.get("schedule", "constant")
    warmup = int(case.get("warmup_steps", 0))
    total = int(case.get("total_steps", len(steps)))
    shifted = case.get("token_count", "shifted")
    if shifted not in ("shifted", "unshifted"):
        raise ValueError("token_count must be 'shifted' or 'unshifted'")
    lr_lambda(schedule, 0, warmup, total)  # validate the name

    # unique parameters (a tied lm_head appears once), Trainer's two groups
    seen, uniq = set(), []
    for t in trainables:
        if id(t.param) not in seen:
            seen.add(id(t.param))
            uniq.append(t)
    params = [t.param for t in uniq]
    groups = [{"params": [t.param for t in uniq if decays(t)], "weight_decay": wd},
              {"params": [t.param for t in uniq if not decays(t)], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=wd)

    log = []
    for s, mbs in enumerate(steps):
        step_lr = lr * lr_lambda(schedule, s, warmup, total)
        for g in opt.param_groups:
            g["lr"] = step_lr
        num_items = None if shifted == "shifted" else sum(counted_tokens(mb, shifted=False) for mb in mbs)
        loss, grads, n = step_loss_and_grads(model, params, mbs, num_items)
        for p, g in zip(params, grads):
            p.grad = g
        present = [p for p in params if p.grad is not None]
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(present, max_norm))
        else:
            norm = total_grad_norm([p.grad for p in present])
        opt.step()
        opt.zero_grad(set_to_none=True)
        log.append({"loss": loss, "lr": step_lr, "grad_norm": norm, "tokens": n})
    return log


def run_train_case(case: Dict[str, Any], base_dir: str, lm: "ref.LoadedModel", model_dir: str) -> Dict[str, Any]:
    kind = case["kind"]
    steps = [[parse_micro_batch(mb, lm) for mb in step] for step in case["steps"]]
    if not steps or any(not s for s in steps):
        raise ValueError("steps must be a non-empty list of non-empty micro-batch lists")
    if kind == "lora_train":
        adapter_dir = os.path.normpath(os.path.join(base_dir, case["adapter"]))
        cfg = load_adapter_config(adapter_dir)
        if float(cfg.get("lora_dropout", 0.0) or 0.0) != 0.0:
            if not case.get("ignore_dropout"):
                raise ValueError("lora_dropout must be 0 for the reference (or pass ignore_dropout: true)")
        adapted = build_adapted(lm, adapter_dir, cfg=cfg)
        model, trainables = adapted.model, adapted.trainables
    else:
        model, trainables = full_trainables(lm)
    torch.manual_seed(0)
    log = train(model, trainables, steps, case)
    result: Dict[str, Any] = {"steps": log}
    evals = case.get("eval")
    eval_mbs = [parse_micro_batch(mb, lm) for mb in evals] if evals is not None else steps[-1]
    result["final_loss"] = mean_loss(model, eval_mbs)
    result["trainable_parameters"] = sum(p.numel() for p in {id(t.param): t.param for t in trainables}.values())
    if case.get("save_to"):
        out_dir = os.path.normpath(os.path.join(base_dir, case["save_to"]))
        if kind == "lora_train":
            save_adapter(adapted, out_dir, model_dir)
        else:
            save_full_model(model, lm, model_dir, out_dir)
    return result
