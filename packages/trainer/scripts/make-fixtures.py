"""Reference values for the trainer tests, from PyTorch (run with Debian's /usr/bin/python3, torch 1.13).

  /usr/bin/python3 packages/trainer/scripts/make-fixtures.py
writes packages/trainer/src/__fixtures__/adamw.json: parameters after each of 4 AdamW steps (two param
groups: decayed weight, undecayed bias) with given gradients and learning rates.
"""
import json, math, os
import torch

torch.set_default_dtype(torch.float64)
w0 = [[math.sin(0.3 * i + 0.7 * j) for j in range(4)] for i in range(3)]
b0 = [math.cos(0.5 * j) for j in range(4)]
w = torch.tensor(w0, requires_grad=True)
b = torch.tensor(b0, requires_grad=True)
opt = torch.optim.AdamW(
    [{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
    lr=1e-3, betas=(0.9, 0.99), eps=1e-8,
)
lrs = [1e-3, 5e-3, 2e-2, 1e-2]
grads, states = [], []
for step, lr in enumerate(lrs):
    gw = [[math.sin(1.3 * step + 0.2 * i - 0.9 * j) * (1 + step) for j in range(4)] for i in range(3)]
    gb = [math.cos(2.1 * step + 0.4 * j) * 0.01 for j in range(4)]
    for g in opt.param_groups:
        g["lr"] = lr
    w.grad = torch.tensor(gw)
    b.grad = torch.tensor(gb)
    opt.step()
    grads.append({"weight": gw, "bias": gb})
    states.append({"weight": w.detach().tolist(), "bias": b.detach().tolist()})

out = {"betas": [0.9, 0.99], "eps": 1e-8, "weightDecay": 0.1, "lrs": lrs, "init": {"weight": w0, "bias": b0},
       "grads": grads, "after": states, "torch": torch.__version__}
path = os.path.join(os.path.dirname(__file__), "..", "src", "__fixtures__", "adamw.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path)
