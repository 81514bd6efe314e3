#!/usr/bin/env python3
"""PyTorch side of Typeformer's GPT benchmarks (bench/train-step.ts, bench/decode.ts).

A small GPT (GPT-2 block: pre-LayerNorm, fused qkv, causal attention, tanh-GELU MLP, tied head,
biases) built from plain torch ops, the same architecture as bench/gpt-tiny.ts. Runs as a persistent
child process so the TypeScript bench can alternate measurements with its own in one sitting: it reads
one JSON command per line on stdin and answers one JSON line on stdout.

  {"cmd": "train", "steps": 5}            -> {"ms": [...per step...], "cpu": [...CPU ms per step...]}
  {"cmd": "decode", "batch": 8, "tokens": 32} -> {"ms": total, "cpu": CPU ms, "tokens": batch*tokens}
  {"cmd": "quit"}

Threads follow the issue: OPENBLAS_NUM_THREADS=1 (set by the caller) and torch.set_num_threads(2).
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def attn(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        shape = (B, T, self.h, C // self.h)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        Tk = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
        mask = torch.ones(T, Tk, dtype=torch.bool).tril(diagonal=Tk - T)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, ctx, d, layers, heads):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        for m in self.modules():  # GPT-2 initialisation, as in bench/gpt-tiny.ts
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx, caches=None, offset=0):
        B, T = idx.shape
        pos = torch.arange(offset, offset + T)
        x = self.wte(idx) + self.wpe(pos)
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i])
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    vocab, ctx, d = cfg.get("vocab", 65), cfg.get("ctx", 64), cfg.get("d", 128)
    layers, heads, batch = cfg.get("layers", 4), cfg.get("heads", 4), cfg.get("batch", 12)
    torch.set_num_threads(cfg.get("threads", 2))
    torch.manual_seed(0)
    model = GPT(vocab, ctx, d, layers, heads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    x = torch.randint(0, vocab, (batch, ctx))
    y = torch.randint(0, vocab, (batch, ctx))

    def train_step():
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    def decode(b, n):
        caches = [dict() for _ in model.blocks]
        tok = torch.zeros(b, 1, dtype=torch.long)
        with torch.no_grad():
            for t in range(n):
                logits = model(tok, caches, offset=t)
                tok = logits[:, -1].argmax(dim=-1, keepdim=True)
        return tok

    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "train":
            ms, cpu = [], []
            for _ in range(cmd.get("steps", 5)):
                t0, c0 = time.perf_counter(), time.process_time()
                loss = train_step()
                ms.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.process_time() - c0) * 1e3)  # CPU time of all threads
            print(json.dumps({"ms": ms, "cpu": cpu, "loss": loss}), flush=True)
        elif cmd["cmd"] == "decode":
            b, n = cmd.get("batch", 1), cmd.get("tokens", 32)
            t0, c0 = time.perf_counter(), time.process_time()
            decode(b, n)
            ms, cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
            print(json.dumps({"ms": ms, "cpu": cpu, "tokens": b * n}), flush=True)
        elif cmd["cmd"] == "quit":
            break


if __name__ == "__main__":
    main()
