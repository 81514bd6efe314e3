"""Golden values for @typeformer/attention tests, computed with PyTorch the way Hugging Face does.

Run with Debian's torch: /usr/bin/python3 packages/attention/scripts/make-fixtures.py
Writes src/__fixtures__/rotary-alibi.json.
"""
import json
import math
import os

import torch

torch.manual_seed(0)


def rotate_half(x):  # transformers.models.llama.modeling_llama.rotate_half
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):  # transformers.models.gptj.modeling_gptj.rotate_every_two
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope(x, pos, theta, layout, rotary_dim):
    d = rotary_dim
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = pos.float()[..., None] * inv_freq  # (B, T, d/2)
    if layout == "half":
        emb = torch.cat((freqs, freqs), dim=-1)
        rot = rotate_half
    else:
        emb = torch.repeat_interleave(freqs, 2, dim=-1)
        rot = rotate_every_two
    cos = emb.cos()[:, None]  # (B, 1, T, d)
    sin = emb.sin()[:, None]
    x_rot, x_pass = x[..., :d], x[..., d:]
    return torch.cat((x_rot * cos + rot(x_rot) * sin, x_pass), dim=-1)


def alibi_slopes(num_heads):  # transformers.models.bloom.modeling_bloom.build_alibi_tensor
    closest = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    if closest != num_heads:
        extra_base = torch.tensor(2 ** (-(2 ** -(math.log2(2 * closest) - 3))), dtype=torch.float32)
        remaining = min(closest, num_heads - closest)
        extra = torch.pow(extra_base, torch.arange(1, 1 + 2 * remaining, 2, dtype=torch.int32))
        slopes = torch.cat([slopes, extra], dim=0)
    return slopes


cases = []
B, H, T, D = 2, 3, 5, 8
for layout in ["half", "interleaved"]:
    for theta, rotary_dim, kind in [(10000.0, 8, "offset"), (500000.0, 8, "positions"), (10000.0, 4, "positions")]:
        x = torch.randn(B, H, T, D)
        if kind == "offset":
            pos = torch.arange(3, 3 + T)[None].expand(B, T)
        else:
            pos = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]])
        y = rope(x, pos, theta, layout, rotary_dim)
        cases.append(
            {
                "layout": layout,
                "theta": theta,
                "rotaryDim": rotary_dim,
                "shape": [B, H, T, D],
                "offset": 3 if kind == "offset" else None,
                "positions": pos.tolist() if kind == "positions" else None,
                "x": x.flatten().tolist(),
                "y": y.flatten().tolist(),
            }
        )

out = {
    "rotary": cases,
    "alibiSlopes": {str(n): alibi_slopes(n).tolist() for n in [1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 32, 40]},
}
path = os.path.join(os.path.dirname(__file__), "..", "src", "__fixtures__", "rotary-alibi.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path)
