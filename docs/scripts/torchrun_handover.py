#!/usr/bin/python3
"""Typeformer -> PyTorch (torchrun) -> Typeformer hand-over, executed with nothing but torch + the stdlib.

transformers and peft are not installable on the Typeformer dev machine (no PyPI), so this script
re-implements what they would do, following their sources:

  * reads a Typeformer checkpoint folder (config.json + model.safetensors, or an index + shards) the
    way transformers' GPT2LMHeadModel.from_pretrained does: same module names (transformer.h.0.attn.c_attn,
    Conv1D weights stored (in, out)), the "transformer." prefix added to names saved without it (as in the
    released gpt2 checkpoint), the causal-mask buffers (h.N.attn.bias / masked_bias) ignored, lm_head tied
    to transformer.wte;
  * checks its logits on a fixed input against the ones Typeformer computed (--ref-logits);
  * applies a PEFT LoRA adapter saved by Typeformer the way peft does (--adapter): adapter_config.json,
    tensor names base_model.model.<module>.lora_A.weight (r, in) / lora_B.weight (out, r), modules matched
    against target_modules by PEFT's rule, scaling lora_alpha / r (or / sqrt(r) with use_rslora), the
    unmerged forward y = base(x) + scaling * B(A(x)) and the merged weight W + scaling * (B @ A)
    (transposed for fan_in_fan_out Conv1D layers) — both are compared with Typeformer's adapter logits;
  * continues training data-parallel across the torchrun processes on the run's own token shards
    (runs/<run>/data, Typeformer's uint16/uint32 little-endian shards): FSDP when this torch can run it,
    otherwise DDP (the exact FSDP error is printed and recorded), gloo on CPU, nccl on CUDA;
  * checks that the N-process run equals one process training on the whole global batch (same steps,
    same data), so the distributed part is verified, not only launched;
  * saves the result the way save_pretrained(safe_serialization=True) does: rank 0, full state dict,
    names with the "transformer." prefix, the tied lm_head left out, {"format": "pt"} metadata, each file
    written to a temporary name and renamed (atomic); config.json and tokenizer files alongside, plus
    torch-logits.json (the trained model's logits on the same input) for the way back;
  * with --adapter-out, trains a LoRA adapter on the result in torch (peft's initialisation, base frozen)
    and saves it the way peft's save_pretrained does (adapter_config.json + adapter_model.safetensors)
    with its logits, so Typeformer's loadAdapter can be checked on an adapter it did not write.

Launch (Debian's torch 1.13 on Python 3.11 needs --redirects 1 --tee 1, see below):

  /usr/bin/python3 -m torch.distributed.run --nproc_per_node 2 --redirects 1 --tee 1 \\
      docs/scripts/torchrun_handover.py CHECKPOINT --data RUN_DIR/data --out OUT_DIR \\
      [--ref-logits tf-logits.json] [--adapter ADAPTER_DIR --adapter-ref-logits tf-lora-logits.json] \\
      [--adapter-out TORCH_ADAPTER_DIR] [--steps 40] [--batch-size 8] [--lr 1e-3] [--strategy auto|fsdp|ddp]

Why --redirects 1 --tee 1: torch 1.13's torchrun parses its default --redirects/--tee value "0" into
None on Python 3.11 (Std is an IntFlag and 3.11 no longer iterates its zero member) and stops with
"AttributeError: 'NoneType' object has no attribute 'get'" before starting any worker. Any explicit
non-zero single-stream value avoids the bad path; 1 + tee 1 keeps stdout on the console. torch >= 2.0
does not need it.

It also runs without torchrun (one process, world size 1). Exit status 0 when every check passes.
"""
import argparse
import copy
import dataclasses
import json
import math
import os
import re
import shutil
import struct
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------ safetensors
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def read_safetensors(path):
    """{name: tensor} from a .safetensors file (spec: u64 LE header size, JSON header, raw LE bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    if not meta or meta.get("format") != "pt":
        raise ValueError(f"{path}: __metadata__ {meta!r}; transformers' loader requires {{'format': 'pt'}}")
    base = 8 + n
    out = {}
    for name, info in header.items():
        start, stop = info["data_offsets"]
        buf = bytearray(raw[base + start:base + stop])
        dtype = DTYPES[info["dtype"]]
        t = torch.frombuffer(buf, dtype=dtype) if stop > start else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def read_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(read_safetensors(os.path.join(model_dir, s)))
        return out
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def write_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def safetensors_bytes(tensors):
    """Serialises {name: float32 tensor}; names sorted, header padded to 8 bytes, {"format": "pt"}."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", torch.float32).contiguous()
        raw = t.numpy().tobytes()  # little-endian on every platform torch ships for
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# ------------------------------------------------------------------ GPT-2, as transformers' modeling_gpt2
def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT = {"gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new, "gelu_fast": gelu_new,
       "gelu": lambda x: F.gelu(x), "relu": F.relu}


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a linear layer whose weight is stored (in, out)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        self.n_head, self.d = c["n_head"], d
        self.scale = c.get("scale_attn_weights", True)
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.attn_dropout = nn.Dropout(c.get("attn_pdrop", 0.0))
        self.resid_dropout = nn.Dropout(c.get("resid_pdrop", 0.0))

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(self.d, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        w = q @ k.transpose(-1, -2)
        if self.scale:
            w = w / math.sqrt(D)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        w = w.masked_fill(~causal, torch.finfo(w.dtype).min)
        w = self.attn_dropout(torch.softmax(w, dim=-1))
        y = (w @ v).transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class GPT2MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["n_embd"]
        inner = c.get("n_inner") or 4 * d
        self.c_fc = Conv1D(inner, d)
        self.c_proj = Conv1D(d, inner)
        self.act = ACT[c.get("activation_function", "gelu_new")]
        self.dropout = nn.Dropout(c.get("resid_pdrop", 0.0))

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        eps = c.get("layer_norm_epsilon", 1e-5)
        self.ln_1 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.attn = GPT2Attention(c)
        self.ln_2 = nn.LayerNorm(c["n_embd"], eps=eps)
        self.mlp = GPT2MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_positions"], c["n_embd"])
        self.drop = nn.Dropout(c.get("embd_pdrop", 0.0))
        self.h = nn.ModuleList([GPT2Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c.get("layer_norm_epsilon", 1e-5))

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.drop(self.wte(ids) + self.wpe(pos)[None])
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        for key, bad in (("scale_attn_by_inverse_layer_idx", True), ("reorder_and_upcast_attn", True)):
            if c.get(key) == bad:
                raise ValueError(f"config {key}={bad} is not implemented in this script")
        self.config = c
        self.transformer = GPT2Model(c)
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tie_word_embeddings (GPT-2 default True)

    def forward(self, ids):
        return self.lm_head(self.transformer(ids))


IGNORED = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")  # causal-mask buffers of old checkpoints


def load_gpt2(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") != "gpt2":
        raise ValueError(f"{model_dir}: model_type {config.get('model_type')!r}; this script implements gpt2")
    if config.get("tie_word_embeddings", True) is False:
        raise ValueError("an untied GPT-2 head is not implemented in this script")
    model = GPT2LMHeadModel(config)
    tensors = read_checkpoint(model_dir)
    state = {}
    for name, t in tensors.items():
        if IGNORED.search(name):
            continue
        key = name if name.startswith(("transformer.", "lm_head.")) else "transformer." + name
        state[key] = t.to(torch.float32)
    head = state.pop("lm_head.weight", None)
    if head is not None and not torch.equal(head, state["transformer.wte.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight but the config ties them")
    own = {k for k in model.state_dict() if k != "lm_head.weight"}
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise ValueError(f"{model_dir}: missing {missing[:6]}, unexpected {unexpected[:6]}")
    for k, v in model.state_dict().items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{k}: shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}")
    model.load_state_dict(state, strict=False)
    return config, model, len(tensors)


def save_gpt2(model, config, src_dir, out_dir):
    """What save_pretrained(safe_serialization=True) writes for GPT2LMHeadModel."""
    os.makedirs(out_dir, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: saved once
    write_atomic(os.path.join(out_dir, "model.safetensors"), safetensors_bytes(state))
    cfg = dict(config, torch_dtype="float32")
    write_atomic(os.path.join(out_dir, "config.json"), (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode())
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                 "merges.txt", "generation_config.json"):
        if os.path.exists(os.path.join(src_dir, name)):
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(out_dir, name))
    return len(state)


# --------------------------------------------------------------- vLLM's name handling, replayed (not vLLM)
def vllm_gpt2_names(model_dir, adapter_dir=None):
    """Replays the name handling of vLLM's GPT2LMHeadModel.load_weights (vllm/model_executor/models/gpt2.py):
    the config asserts, skipping .attn.bias/.attn.masked_bias, adding "transformer." to names without it or
    "lm_head", looking each name up in the model's parameters (a KeyError in vLLM), transposing the Conv1D
    weights (c_attn, c_proj, c_fc) into its (out, in) linear layers; and, for an adapter, the name parsing of
    vllm/lora/utils.py parse_fine_tuned_lora_name. vLLM itself is not run. Returns a list of problems."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    problems = [f"vLLM asserts not config.{k}" for k in
                ("add_cross_attention", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn") if config.get(k)]
    params = {n: tuple(t.shape) for n, t in GPT2LMHeadModel(config).state_dict().items()}  # tied head included
    loaded = set()
    for name, t in read_checkpoint(model_dir).items():
        if ".attn.bias" in name or ".attn.masked_bias" in name:
            continue
        if not name.startswith("transformer.") and not name.startswith("lm_head"):
            name = "transformer." + name
        if name not in params:
            problems.append(f"{name}: not a parameter of vLLM's GPT2LMHeadModel")
            continue
        shape = tuple(t.shape)
        if any(c in name for c in ("c_attn", "c_proj", "c_fc")) and name.endswith(".weight"):
            shape, want = shape[::-1], params[name][::-1]  # vLLM: loaded_weight.t() into (out, in)
        else:
            want = params[name]
        if shape != want:
            problems.append(f"{name}: shape {shape}, vLLM's parameter is {want}")
        loaded.add(name)
    tied = config.get("tie_word_embeddings", True)
    for name in params:
        if name not in loaded and not (tied and name == "lm_head.weight"):
            problems.append(f"vLLM parameter {name} is not in the checkpoint")
    if adapter_dir:
        for name in read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors")):
            parts = name.split(".")
            if not (parts[:2] == ["base_model", "model"] and parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B")):
                problems.append(f"adapter tensor {name}: parse_fine_tuned_lora_name rejects it")
            elif ".".join(parts[2:-2]) + ".weight" not in params:
                problems.append(f"adapter tensor {name}: module {'.'.join(parts[2:-2])} is not in the model")
    return problems


# ----------------------------------------------------------------------------------- PEFT LoRA, by hand
def peft_matches(key, target_modules):
    """peft.tuners.tuners_utils.check_target_module_exists: a string is a regex fullmatch on the whole
    module name; a list matches a name equal to an entry or ending with "." + entry."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, key) is not None
    return any(key == t or key.endswith("." + t) for t in target_modules)


def read_adapter(adapter_dir, model):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    if ac.get("peft_type") != "LORA":
        raise ValueError(f"peft_type {ac.get('peft_type')!r}; only LORA is implemented")
    for key in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern"):
        if ac.get(key):
            raise ValueError(f"adapter_config.json {key}={ac[key]!r} is not implemented in this script")
    r, alpha = ac["r"], ac["lora_alpha"]
    scaling = alpha / math.sqrt(r) if ac.get("use_rslora") else alpha / r
    tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    modules = dict(model.named_modules())
    layers = {}
    for name, t in tensors.items():
        m = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", name)
        if not m:
            raise ValueError(f"adapter tensor {name} is not base_model.model.<module>.lora_[AB].weight")
        module, which = m.group(1), m.group(2)
        if module not in modules:
            raise ValueError(f"adapter module {module} does not exist in the model")
        if not peft_matches(module, ac["target_modules"]):
            raise ValueError(f"adapter module {module} does not match target_modules {ac['target_modules']}")
        layers.setdefault(module, {})[which] = t.to(torch.float32)
    for module, ab in layers.items():
        w = modules[module].weight
        out_f, in_f = (w.shape[1], w.shape[0]) if ac.get("fan_in_fan_out") else tuple(w.shape)
        if tuple(ab["A"].shape) != (r, in_f) or tuple(ab["B"].shape) != (out_f, r):
            raise ValueError(f"{module}: lora_A {tuple(ab['A'].shape)}, lora_B {tuple(ab['B'].shape)}; "
                             f"expected ({r}, {in_f}) and ({out_f}, {r})")
    return ac, scaling, layers


def lora_unmerged(model, ac, scaling, layers):
    """PEFT's LoraLayer forward: result = base(x) + lora_B(lora_A(dropout(x))) * scaling (eval: no dropout)."""
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    for module, ab in layers.items():
        mod = mods[module]
        base_forward = mod.forward

        def forward(x, base_forward=base_forward, A=ab["A"], B=ab["B"]):
            return base_forward(x) + (x @ A.T @ B.T) * scaling

        mod.forward = forward
    return m


def lora_merged(model, ac, scaling, layers):
    """PEFT's merge_and_unload: W += transpose(B @ A, fan_in_fan_out) * scaling."""
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    with torch.no_grad():
        for module, ab in layers.items():
            delta = (ab["B"] @ ab["A"]) * scaling  # (out, in)
            mods[module].weight += delta.T if ac.get("fan_in_fan_out") else delta
    return m


def train_lora(model, tokens, args, targets=("c_attn", "c_fc"), r=8, alpha=16, steps=20, lr=5e-3):
    """A LoRA adapter trained in torch the way peft sets one up (A kaiming-uniform(a=sqrt(5)), B zero,
    base frozen, y = base(x) + scaling * B(A(x))). Returns (adapter_config, tensors, adapted model)."""
    m = copy.deepcopy(model).to("cpu").train()
    for p in m.parameters():
        p.requires_grad_(False)
    scaling = alpha / r
    torch.manual_seed(args.seed)
    tensors, params = {}, []
    for name, mod in list(m.named_modules()):
        if not (isinstance(mod, Conv1D) and peft_matches(name, list(targets))):
            continue
        in_f, out_f = mod.weight.shape  # Conv1D stores (in, out)
        A = nn.Parameter(torch.empty(r, in_f))
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        B = nn.Parameter(torch.zeros(out_f, r))
        params += [A, B]
        tensors[f"base_model.model.{name}.lora_A.weight"] = A
        tensors[f"base_model.model.{name}.lora_B.weight"] = B

        def forward(x, base_forward=mod.forward, A=A, B=B):
            return base_forward(x) + (x @ A.T @ B.T) * scaling

        mod.forward = forward
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    for s in range(steps):
        x, y = windows(tokens, args.batch_size, args.context_length, args.seed + 100_000 + s)
        opt.zero_grad(set_to_none=True)
        lm_loss(m, x, y).backward()
        opt.step()
    config = {"alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": None, "bias": "none",
              "fan_in_fan_out": True, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
              "layers_to_transform": None, "lora_alpha": alpha, "lora_dropout": 0.0, "modules_to_save": None,
              "peft_type": "LORA", "r": r, "rank_pattern": {}, "revision": None, "target_modules": list(targets),
              "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
    return config, tensors, m.eval()


# ----------------------------------------------------------------------------------------------- data
def read_tokens(data_dir, split):
    with open(os.path.join(data_dir, "manifest.json")) as f:
        man = json.load(f)
    if man.get("format") != "typeformer-tokens":
        raise ValueError(f"{data_dir}/manifest.json: format {man.get('format')!r}")
    parts = []
    for shard in man["splits"][split]["shards"]:
        with open(os.path.join(data_dir, shard["file"]), "rb") as f:
            buf = bytearray(f.read())
        if man["dtype"] == "uint16":
            parts.append(torch.frombuffer(buf, dtype=torch.int16).to(torch.int64) & 0xFFFF)
        else:
            parts.append(torch.frombuffer(buf, dtype=torch.int32).to(torch.int64))
    return torch.cat(parts), man


def windows(tokens, n, T, seed):
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - T - 1, (n,), generator=g)
    rows = torch.stack([tokens[s:s + T + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def lm_loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def make_optimizer(model, lr, weight_decay):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))


def train_steps(model, params_model, opt, tokens, args, rank, world, clip=True):
    """args.steps steps; step s draws a global batch of world*batch windows (seed args.seed+s); this rank
    trains on its slice. Returns the per-step global mean losses as seen by this rank's slice."""
    losses = []
    B, T = args.batch_size, args.context_length
    for s in range(args.steps):
        x, y = windows(tokens, world * B, T, args.seed + s)
        x, y = x[rank * B:(rank + 1) * B], y[rank * B:(rank + 1) * B]
        opt.zero_grad(set_to_none=True)
        loss = lm_loss(model, x.to(args.device), y.to(args.device))
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params_model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model, val, args):
    was_training = model.training
    model.eval()
    x, y = windows(val, args.eval_windows, args.context_length, 10_000)
    loss = lm_loss(model, x.to(args.device), y.to(args.device)).item()
    model.train(was_training)
    return loss


@torch.no_grad()
def logits_for(model, ids, device):
    return model(torch.tensor([ids], device=device))[0].float().cpu()


# ------------------------------------------------------------------------- FSDP on this torch, or not
class Py311DataclassShim:
    """torch 1.13's torch.distributed._shard metadata declares `field(default=TensorProperties())`, which
    Python 3.11's dataclasses reject as a mutable default ("use default_factory"): importing
    torch.distributed.fsdp fails. This shim turns such defaults into default_factory copies for the
    duration of the import (the fix torch 2.0 made in its source)."""

    def __enter__(self):
        self.orig = dataclasses._get_field

        def patched(cls, a_name, a_type, *rest):
            d = cls.__dict__.get(a_name, dataclasses.MISSING)
            if isinstance(d, dataclasses.Field) and d.default is not dataclasses.MISSING \
                    and type(d.default).__hash__ is None:
                value = d.default
                d.default = dataclasses.MISSING
                d.default_factory = lambda value=value: copy.deepcopy(value)
            return self.orig(cls, a_name, a_type, *rest)

        dataclasses._get_field = patched

    def __exit__(self, *exc):
        dataclasses._get_field = self.orig


def wrap_fsdp(model, args, notes):
    try:
        import torch.distributed.fsdp as fsdp  # noqa: F401
    except ValueError as e:
        notes.append(f"import torch.distributed.fsdp: ValueError: {e}")
        with Py311DataclassShim():
            for name in [m for m in sys.modules if m.startswith("torch.distributed._shard")
                         or m.startswith("torch.distributed.fsdp")]:
                del sys.modules[name]
            import torch.distributed.fsdp as fsdp  # noqa: F401
        notes.append("imported with the Python 3.11 dataclass shim")
    import functools

    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={GPT2Block})
    kwargs = {"auto_wrap_policy": policy}
    if args.device.type == "cuda":
        kwargs["device_id"] = args.device
    return FSDP(model, **kwargs)


def full_state_dict(wrapped, strategy):
    if strategy == "fsdp":
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        cfg = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, cfg):
            return wrapped.state_dict()
    return wrapped.module.state_dict() if hasattr(wrapped, "module") else wrapped.state_dict()


# ------------------------------------------------------------------------------------------------ main
def compare(name, got, ref_path, tol, report, base_logits=None):
    with open(ref_path) as f:
        ref = json.load(f)
    expected = torch.tensor(ref["logits"], dtype=torch.float32)
    diff = (got - expected).abs().max().item()
    entry = {"max_abs_diff": diff, "tolerance": tol, "ok": diff <= tol, "positions": len(ref["ids"]),
             "vocab": expected.shape[-1], "reference": ref_path}
    if base_logits is not None:
        entry["adapter_effect_max_abs"] = (got - base_logits).abs().max().item()
    report["checks"][name] = entry
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, help="Typeformer token shards: <run-dir>/data")
    ap.add_argument("--out", required=True)
    ap.add_argument("--ref-logits", help="Typeformer's logits for the probe ids (JSON {ids, logits})")
    ap.add_argument("--adapter", help="PEFT LoRA adapter folder saved by Typeformer")
    ap.add_argument("--adapter-ref-logits", help="Typeformer's logits with the adapter applied")
    ap.add_argument("--adapter-out", help="also train a LoRA adapter on the result in torch and save it here "
                    "in PEFT layout, with its logits (torch-lora-logits.json), for Typeformer's loadAdapter")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8, help="sequences per process per step")
    ap.add_argument("--context-length", type=int, default=0, help="default: the model's n_positions")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--strategy", choices=["auto", "fsdp", "ddp"], default="auto")
    ap.add_argument("--no-equivalence-check", action="store_true")
    args = ap.parse_args()
    t0 = time.time()

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if torch.cuda.is_available():
        args.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(args.device)
    else:
        args.device = torch.device("cpu")
    if distributed:
        dist.init_process_group("nccl" if args.device.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    torch.manual_seed(args.seed)

    def say(*a):
        if rank == 0:
            print(*a, flush=True)

    report = {"torch": torch.__version__, "python": sys.version.split()[0], "world_size": world,
              "backend": dist.get_backend() if distributed else None, "device": str(args.device),
              "checks": {}}

    # 1. load the Typeformer checkpoint as GPT2LMHeadModel
    config, model, n_tensors = load_gpt2(args.checkpoint)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    say(f"loaded {args.checkpoint}: gpt2, {n_tensors} tensors, {n_params:,} parameters "
        f"(n_layer {config['n_layer']}, n_embd {config['n_embd']}, vocab {config['vocab_size']})")
    report.update(checkpoint=args.checkpoint, parameters=n_params)

    # 2. logits on the probe ids = Typeformer's
    probe = None
    if args.ref_logits:
        with open(args.ref_logits) as f:
            probe = json.load(f)["ids"]
        base_logits = logits_for(model, probe, "cpu")
        e = compare("typeformer_to_torch_logits", base_logits, args.ref_logits, args.tol, report)
        say(f"check logits Typeformer -> torch: max |dlogit| {e['max_abs_diff']:.3g} over {e['positions']}x"
            f"{e['vocab']} ({'ok' if e['ok'] else 'FAIL'}, tol {args.tol:g})")
        # 3. LoRA adapter applied the PEFT way = Typeformer's adapter logits
        if args.adapter and args.adapter_ref_logits:
            ac, scaling, layers = read_adapter(args.adapter, model)
            say(f"adapter {args.adapter}: LoRA r={ac['r']} alpha={ac['lora_alpha']} scaling {scaling:g} on "
                f"{len(layers)} modules, fan_in_fan_out={ac.get('fan_in_fan_out')}")
            for kind, build in (("unmerged", lora_unmerged), ("merged", lora_merged)):
                got = logits_for(build(model, ac, scaling, layers).eval(), probe, "cpu")
                e = compare(f"peft_lora_{kind}_logits", got, args.adapter_ref_logits, args.tol, report,
                            base_logits)
                say(f"check LoRA ({kind}, PEFT formula) vs Typeformer+adapter: max |dlogit| "
                    f"{e['max_abs_diff']:.3g} ({'ok' if e['ok'] else 'FAIL'}); the adapter itself moves logits "
                    f"by up to {e['adapter_effect_max_abs']:.3g}")
            report["adapter"] = {"dir": args.adapter, "r": ac["r"], "lora_alpha": ac["lora_alpha"],
                                 "modules": len(layers), "fan_in_fan_out": ac.get("fan_in_fan_out")}

    # 4. continue training, data-parallel
    train, man = read_tokens(args.data, "train")
    val, _ = read_tokens(args.data, "val")
    if man["vocabSize"] != config["vocab_size"]:
        raise ValueError(f"data vocabSize {man['vocabSize']} != model vocab_size {config['vocab_size']}")
    args.context_length = args.context_length or config["n_positions"]
    initial = copy.deepcopy(model.state_dict())
    model.to(args.device).train()
    loss_before = evaluate(model, val, args)
    strategy, notes = args.strategy, []
    wrapped = model
    if distributed:
        if strategy in ("auto", "fsdp"):
            try:
                wrapped = wrap_fsdp(model, args, notes)
                strategy = "fsdp"
            except Exception as e:  # noqa: BLE001 — recorded, then DDP
                notes.append(f"FSDP(model) on {args.device.type}: {type(e).__name__}: {e}")
                if args.strategy == "fsdp":
                    raise
                strategy = "ddp"
        if strategy == "ddp":
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[args.device.index] if args.device.type == "cuda" else None)
    else:
        strategy = "single-process"
    for n in notes:
        say(f"  note: {n}")
    say(f"training {args.steps} steps with {strategy} on {world} process(es), {args.device.type}, "
        f"global batch {world}x{args.batch_size}x{args.context_length} tokens from {args.data}")
    opt = make_optimizer(wrapped, args.lr, args.weight_decay)
    t_train = time.time()
    losses = train_steps(wrapped, wrapped, opt, train, args, rank, world)
    train_s = time.time() - t_train
    state = full_state_dict(wrapped, strategy)
    if strategy == "fsdp":
        model = GPT2LMHeadModel(config)
        if rank == 0:
            model.load_state_dict(state)
    model = model.to("cpu").eval()
    loss_after = evaluate(model, val, argparse.Namespace(**{**vars(args), "device": torch.device("cpu")})) \
        if rank == 0 else None
    report["training"] = {"strategy": strategy, "notes": notes, "steps": args.steps,
                          "batch_per_process": args.batch_size, "context_length": args.context_length,
                          "lr": args.lr, "first_step_loss_rank0": losses[0], "last_step_loss_rank0": losses[-1],
                          "val_loss_before": loss_before, "val_loss_after": loss_after,
                          "eval_windows": args.eval_windows, "train_seconds": train_s}
    if rank == 0:
        say(f"val loss ({args.eval_windows} fixed windows): before {loss_before:.4f} -> after {loss_after:.4f}; "
            f"train loss rank 0 step 1 {losses[0]:.4f} -> step {args.steps} {losses[-1]:.4f}; {train_s:.1f} s")

    if rank == 0:
        # 5. the distributed run equals one process on the whole global batch
        if distributed and not args.no_equivalence_check:
            ref = GPT2LMHeadModel(config)
            ref.load_state_dict(initial, strict=False)
            ref.train()
            ropt = make_optimizer(ref, args.lr, args.weight_decay)
            one = argparse.Namespace(**{**vars(args), "batch_size": world * args.batch_size,
                                        "device": torch.device("cpu")})
            train_steps(ref, ref, ropt, train, one, 0, 1)
            got, exp = model.state_dict(), ref.state_dict()
            diff = max((got[k] - exp[k]).abs().max().item() for k in exp)
            moved = max((got[k] - initial[k]).abs().max().item() for k in exp)
            ok = diff <= 1e-4
            report["checks"]["distributed_equals_single_process"] = {
                "max_abs_diff": diff, "ok": ok, "tolerance": 1e-4, "training_moved_params_by": moved}
            say(f"check {world}-process {strategy} = 1 process on the {world * args.batch_size}-sequence "
                f"global batch: max |dparam| {diff:.3g} ({'ok' if ok else 'FAIL'}); training moved parameters "
                f"by up to {moved:.3g}")
        # 6. save in HF layout (rank 0, full state dict, atomic writes) + logits for the way back
        n_saved = save_gpt2(model, config, args.checkpoint, args.out)
        if probe is not None:
            after = logits_for(model, probe, "cpu")
            write_atomic(os.path.join(args.out, "torch-logits.json"),
                         json.dumps({"ids": probe, "logits": after.tolist()}).encode())
        report["saved"] = {"dir": args.out, "tensors": n_saved}
        for label, d, a in (("typeformer_checkpoint", args.checkpoint, args.adapter),
                            ("torch_checkpoint", args.out, None)):
            problems = vllm_gpt2_names(d, a)
            report["checks"][f"vllm_gpt2_names_{label}"] = {"ok": not problems, "problems": problems}
            say(f"check vLLM GPT-2 load_weights name/shape handling, replayed on {d}{' + adapter' if a else ''}: "
                f"{'ok' if not problems else problems}")
        # 7. an adapter trained in torch, saved the way peft's save_pretrained does
        if args.adapter_out:
            ac, tensors, adapted = train_lora(model, train, args)
            os.makedirs(args.adapter_out, exist_ok=True)
            write_atomic(os.path.join(args.adapter_out, "adapter_model.safetensors"), safetensors_bytes(tensors))
            write_atomic(os.path.join(args.adapter_out, "adapter_config.json"),
                         (json.dumps(ac, indent=2, sort_keys=True) + "\n").encode())
            if probe is not None:
                lg = logits_for(adapted, probe, "cpu")
                write_atomic(os.path.join(args.adapter_out, "torch-lora-logits.json"),
                             json.dumps({"ids": probe, "logits": lg.tolist()}).encode())
            report["torch_adapter"] = {"dir": args.adapter_out, "modules": len(tensors) // 2, "r": ac["r"],
                                       "lora_alpha": ac["lora_alpha"], "target_modules": ac["target_modules"]}
            say(f"saved {args.adapter_out}: LoRA r={ac['r']} alpha={ac['lora_alpha']} on {len(tensors) // 2} "
                f"modules trained in torch (PEFT layout) + torch-lora-logits.json")
        report["wall_seconds"] = time.time() - t0
        ok = all(c["ok"] for c in report["checks"].values())
        report["ok"] = ok
        write_atomic(os.path.join(args.out, "torch-report.json"), (json.dumps(report, indent=2) + "\n").encode())
        say(f"saved {args.out}: model.safetensors ({n_saved} tensors, transformer.* names, tied lm_head left "
            f"out), config.json, tokenizer files, torch-logits.json, torch-report.json; "
            f"{report['wall_seconds']:.1f} s; {'ok' if ok else 'FAILED'}")
    else:
        ok = True
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
