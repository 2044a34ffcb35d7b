#!/usr/bin/env python3
"""An independent GPT-2 forward pass over a Hugging Face export (`pptrain export --format hf`).

It shares no code with pptrain: the safetensors file is parsed by hand, the math is
transformers' GPT2LMHeadModel written out in numpy (float64): token + position embedding,
pre-LN blocks with Conv1D layers (x @ W + b, W stored (in, out)), causal attention scaled
by 1/sqrt(head_dim), the tanh GELU ("gelu_new"), LayerNorm eps from config.json, final LN
and the LM head tied to wte. If torch and transformers happen to be importable, the real
GPT2LMHeadModel loads the same directory and scores the same windows too.

The windows are pptrain's validation windows (lib/data/token_dataset.cpp fill_eval_batch):
the val shards' tokens concatenated in name order, n = len - 1 usable positions rounded down
to a multiple of T; batch k row j starts at ((k*B + j)*T) mod usable, inputs tokens
[s, s+T), targets [s+1, s+T+1). pptrain's validation loss is the mean over the first
`batches` batches of each batch's mean per-token cross-entropy; so is this one.

Prints one JSON line: {"numpy": loss, "transformers": loss or null, "windows": n}.
Usage: hf_reference.py HF_DIR --shards GLOB --seq-len T --batch-size B --batches N
"""
import argparse
import glob
import json
import math
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        raw = data[base + begin:base + end]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        else:
            sys.exit(f"{path}: tensor {name} has dtype {t['dtype']}, not read here")
        tensors[name.removeprefix("transformer.")] = a.astype(np.float64).reshape(t["shape"])
    return tensors


def read_shards(pattern):
    tokens = []
    for path in sorted(glob.glob(pattern)):
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(1024), dtype="<i4")
            assert header[0] == 20240520 and header[1] == 1, f"{path}: not an llm.c token shard"
            tokens.append(np.frombuffer(f.read(), dtype="<u2")[:header[2]])
    if not tokens:
        sys.exit(f"no shard matches {pattern}")
    return np.concatenate(tokens).astype(np.int64)


def eval_windows(tokens, T, B, batches):
    """pptrain's fill_eval_batch: a list of (inputs, targets) batches, each (B, T)."""
    usable = (len(tokens) - 1) // T * T
    n_batches = min(batches, ((len(tokens) - 1) // T + B - 1) // B)
    out = []
    for k in range(n_batches):
        starts = [((k * B + j) * T) % usable for j in range(B)]
        out.append((np.stack([tokens[s:s + T] for s in starts]),
                    np.stack([tokens[s + 1:s + T + 1] for s in starts])))
    return out


def layernorm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_logits(p, cfg, idx):
    B, T = idx.shape
    C, NH, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    hd = C // NH
    x = p["wte.weight"][idx] + p["wpe.weight"][np.arange(T)]
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(cfg["n_layer"]):
        h = lambda name: p[f"h.{l}.{name}"]  # noqa: E731
        a = layernorm(x, h("ln_1.weight"), h("ln_1.bias"), eps)
        qkv = a @ h("attn.c_attn.weight") + h("attn.c_attn.bias")  # Conv1D: (B,T,C) @ (C,3C)
        q, k, v = (t.reshape(B, T, NH, hd).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
        att = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + causal
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + y @ h("attn.c_proj.weight") + h("attn.c_proj.bias")
        m = layernorm(x, h("ln_2.weight"), h("ln_2.bias"), eps)
        m = gelu_new(m @ h("mlp.c_fc.weight") + h("mlp.c_fc.bias"))
        x = x + m @ h("mlp.c_proj.weight") + h("mlp.c_proj.bias")
    x = layernorm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].T  # tied head: (B,T,V)


def cross_entropy(logits, targets):
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return float((lse - picked).mean())


def transformers_loss(hf_dir, batches):
    try:
        import torch
        from transformers import GPT2LMHeadModel
    except ImportError:
        return None
    model = GPT2LMHeadModel.from_pretrained(hf_dir).double().eval()
    losses = []
    with torch.no_grad():
        for inputs, targets in batches:
            logits = model(torch.from_numpy(inputs)).logits
            losses.append(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1)).item())
    return sum(losses) / len(losses)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("--shards", required=True, help="glob of llm.c token shards (pptrain's data.val)")
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True, help="pipeline.micro_batch_size")
    ap.add_argument("--batches", type=int, required=True, help="training.val_batches")
    args = ap.parse_args()
    with open(os.path.join(args.hf_dir, "config.json")) as f:
        cfg = json.load(f)
    params = read_safetensors(os.path.join(args.hf_dir, "model.safetensors"))
    assert params["wte.weight"].shape[0] == cfg["vocab_size"], "wte rows != vocab_size"
    batches = eval_windows(read_shards(args.shards), args.seq_len, args.batch_size, args.batches)
    loss = sum(cross_entropy(gpt2_logits(params, cfg, i), t) for i, t in batches) / len(batches)
    print(json.dumps({"numpy": loss, "transformers": transformers_loss(args.hf_dir, batches),
                      "windows": len(batches) * args.batch_size}))


if __name__ == "__main__":
    main()
