#!/usr/bin/env python3
"""Replays bench/pytorch/parity-dump.ts's run in torch (same initial weights, same batches, same
optimizer/schedule/clipping) and prints per-step loss differences.

  /usr/bin/python3 bench/pytorch/parity.py OUT   (OUT as given to parity-dump.ts)
"""
import json, math, sys
import numpy as np
import torch
import torch.nn.functional as F

out = sys.argv[1]
torch.set_num_threads(1)
meta = json.load(open(out + ".json"))
flat = np.fromfile(out + ".weights.bin", dtype=np.float32)
W = {m["name"]: torch.nn.Parameter(torch.from_numpy(flat[m["offset"]:m["offset"] + int(np.prod(m["shape"]))].reshape(m["shape"]).copy())) for m in meta["meta"]}
steps = meta["steps"]
B, L, C, H, NL = 12, 65, 128, 4, 4
T = L - 1
batches = torch.from_numpy(np.fromfile(out + ".batches.bin", dtype=np.int32).astype(np.int64)).view(steps, B, L)
gelu = sys.argv[2] if len(sys.argv) > 2 else "tanh"
mask = torch.ones(T, T, dtype=torch.bool).tril()

def ln(x, n): return F.layer_norm(x, (C,), W[n + ".weight"], W[n + ".bias"], 1e-5)
def lin(x, n): return x @ W[n + ".weight"] + W[n + ".bias"]

def loss_fn(tok):
    idx, y = tok[:, :-1], tok[:, 1:]
    x = W["wte.weight"][idx] + W["wpe.weight"][:T]
    for i in range(NL):
        h = f"h.{i}."
        q, k, v = lin(ln(x, h + "ln_1"), h + "attn.c_attn").split(C, dim=2)
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        yy = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(yy, h + "attn.c_proj")
        x = x + lin(F.gelu(lin(ln(x, h + "ln_2"), h + "mlp.c_fc"), approximate=gelu), h + "mlp.c_proj")
    logits = ln(x, "ln_f") @ W["wte.weight"].T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

def get_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
    if it < warmup: return lr * (it + 1) / (warmup + 1)
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

params = list(W.values())
opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
ours = meta["losses"] or [float("nan")] * steps
norms = meta["norms"] or [float("nan")] * steps
for it in range(steps):
    for g in opt.param_groups: g["lr"] = get_lr(it)
    loss = loss_fn(batches[it])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
    opt.step()
    if it < 10 or it % 20 == 0 or it == steps - 1:
        print(f"step {it:4d} torch {loss.item():.5f} ours {ours[it]:.5f} diff {ours[it]-loss.item():+.5f}  gnorm torch {gn:.4f} ours {norms[it]:.4f}")

with torch.no_grad():
    vb = torch.from_numpy(np.fromfile(out + ".val.bin", dtype=np.int32).astype(np.int64)).view(-1, B, L)
    print(f"val loss over the bench's {len(vb)} validation batches: {sum(loss_fn(b).item() for b in vb) / len(vb):.4f}")
