#!/usr/bin/env python3
"""PyTorch counterpart of bench/nanogpt.ts: nanoGPT's CPU configuration on Tiny Shakespeare.

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/pytorch/nanogpt.py <tinyshakespeare.txt> [iters=2000] [eval_batches=50]

Same data handling as nanoGPT (char vocabulary = sorted set of characters, first 90% train / last 10%
validation, random windows), same model shape as Typeformer's GPT-2 (pre-LayerNorm blocks with biases,
fused qkv, tanh-GELU MLP, tied head; 4 layers, 4 heads, 128 wide, context 64), batch 12, AdamW
(0.9, 0.99), weight decay 0.1 on every >= 2-D tensor, lr 1e-3 -> 1e-4 cosine over 2000 steps with 100
warmup steps (nanoGPT's get_lr), grad clip 1.0, dropout 0. Prints progress on stderr and one JSON line
on stdout: {"wall": s, "msPerIter": ms, "cpuMsPerIter": ms, "valLoss": x, "iters": n}
(CPU time per iteration is the robust figure on a shared machine; TORCH_THREADS sets torch threads, default 2;
SEED the torch seed, default 1337).
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

path = sys.argv[1]
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
eval_batches = int(sys.argv[3]) if len(sys.argv) > 3 else 50
torch.set_num_threads(int(__import__("os").environ.get("TORCH_THREADS", "2")))
torch.manual_seed(int(__import__("os").environ.get("SEED", "1337")))

text = open(path, encoding="utf-8").read()
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]
V, T, B, C, L, H = len(chars), 64, 12, 128, 4, 4


def get_batch(d, gen=None):
    ix = torch.randint(len(d) - T, (B,), generator=gen)
    x = torch.stack([d[i : i + T] for i in ix])
    y = torch.stack([d[i + 1 : i + 1 + T] for i in ix])
    return x, y


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("out.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


def get_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay=2000):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return min_lr
    ratio = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


model = GPT()
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
    lr=1e-3, betas=(0.9, 0.99),
)
t0 = time.time()
c0 = time.process_time()
for it in range(iters):
    for g in opt.param_groups:
        g["lr"] = get_lr(it)
    x, y = get_batch(train_data)
    loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if it % 50 == 0:
        print(f"iter {it} loss {loss.item():.4f}", file=sys.stderr, flush=True)
train_s = time.time() - t0
train_cpu = time.process_time() - c0
model.eval()
gen = torch.Generator().manual_seed(1)
with torch.no_grad():
    val = sum(model(*get_batch(val_data, gen)).item() for _ in range(eval_batches)) / eval_batches
wall = time.time() - t0
print(json.dumps({"wall": wall, "msPerIter": 1000 * train_s / iters, "cpuMsPerIter": 1000 * train_cpu / iters, "valLoss": val, "iters": iters,
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
