#!/usr/bin/python3
"""Writes a small, deterministic LoRA training example on stories260K and runs it through reference.py.

  lora_example/adapter/          PEFT adapter: r=4, lora_alpha=8, target_modules [q_proj, v_proj], dropout 0;
                                 lora_A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's default A init), lora_B ~ N(0, 0.05²),
                                 both from torch.Generator seed 0, in module order (A then B per module)
  lora_example/request.json      "base" loss, "adapter" lora_loss and "train": lora_train with 6 optimizer steps,
                                 each one micro-batch of 4 sequences x 32 tokens sampled (temperature 1, seed 1234)
                                 from the base model after BOS; lr 0.01, constant, no warmup, no weight decay,
                                 no clipping, AdamW betas (0.9, 0.999), eps 1e-8
  lora_example/response.json     reference.py's answer

Usage: /usr/bin/python3 test/reference/make_lora_example.py [--model DIR] [--out DIR]
"""
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import reference as R  # noqa: E402
import lora_reference as L  # noqa: E402


def main():
    args = sys.argv[1:]
    model_dir = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "models", "stories260K"))
    out = os.path.join(HERE, "lora_example")
    if "--model" in args:
        model_dir = os.path.abspath(args[args.index("--model") + 1])
    if "--out" in args:
        out = os.path.abspath(args[args.index("--out") + 1])
    lm = R.load_model(model_dir)

    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
           "target_modules": ["q_proj", "v_proj"], "bias": "none", "use_rslora": False, "use_dora": False,
           "fan_in_fan_out": False, "init_lora_weights": True, "base_model_name_or_path": "stories260K"}
    plan = L.plan_adapter(cfg, lm.model, "llama")
    mods = {m.name: m.module for m in L.hf_modules(lm.model)}
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for t in plan.targets:
        o, i = mods[t.name].weight.shape
        k = L.PEFT_PREFIX + t.name
        tensors[k + ".lora_A.weight"] = (torch.rand(t.r, i, generator=g) * 2 - 1) / i ** 0.5
        tensors[k + ".lora_B.weight"] = torch.randn(o, t.r, generator=g) * 0.05
    adapter = os.path.join(out, "adapter")
    os.makedirs(adapter, exist_ok=True)
    L.write_safetensors(os.path.join(adapter, L.WEIGHTS_NAME), tensors)
    with open(os.path.join(adapter, L.CONFIG_NAME), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    # data: 6 steps x 4 sequences x 32 tokens sampled from the base model
    g = torch.Generator().manual_seed(1234)
    seqs = torch.ones(24, 1, dtype=torch.long)
    with torch.no_grad():
        while seqs.shape[1] < 32:
            logits = R.forward(lm, seqs, torch.ones_like(seqs))[:, -1]
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=g)
            seqs = torch.cat([seqs, nxt], dim=1)
    steps = [[{"input_ids": seqs[4 * s: 4 * s + 4].tolist()}] for s in range(6)]
    rel_model = os.path.relpath(model_dir, out)
    request = {"cases": [
        {"name": "base", "model": rel_model, "kind": "loss", "input_ids": steps[0][0]["input_ids"]},
        {"name": "adapter", "model": rel_model, "kind": "lora_loss", "adapter": "adapter",
         "input_ids": steps[0][0]["input_ids"]},
        {"name": "train", "model": rel_model, "kind": "lora_train", "adapter": "adapter", "steps": steps,
         "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "max_grad_norm": 0.0,
         "schedule": "constant", "warmup_steps": 0, "total_steps": 6},
    ]}
    req_path = os.path.join(out, "request.json")
    with open(req_path, "w") as f:
        json.dump(request, f)
        f.write("\n")
    p = subprocess.run([sys.executable, os.path.join(HERE, "reference.py"), req_path], capture_output=True,
                       text=True, check=True)
    with open(os.path.join(out, "response.json"), "w") as f:
        f.write(p.stdout)
    res = json.loads(p.stdout)["results"]
    print(f"base loss {res['base']['loss']}, with adapter {res['adapter']['loss']}")
    for s, st in enumerate(res["train"]["steps"]):
        print(f"step {s}: loss {st['loss']:.7f}  lr {st['lr']}  grad_norm {st['grad_norm']:.6f}  tokens {st['tokens']}")
    print(f"final_loss (last step's batch, trained adapter) {res['train']['final_loss']}")


if __name__ == "__main__":
    main()
