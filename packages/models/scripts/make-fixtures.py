#!/usr/bin/python3
"""Parity fixtures for @typeformer/models.

Run with Debian's torch:  /usr/bin/python3 packages/models/scripts/make-fixtures.py

transformers is not installed here, so this script re-implements the forward passes of Hugging Face's
modeling_gpt2.py, modeling_llama.py, modeling_bert.py and modeling_t5.py in plain torch, following
their semantics exactly (same tensor names and layouts, same masks, same activation functions, same
epsilons, T5's relative position buckets). It builds tiny random models, writes them in HF layout
(config.json + model.safetensors written by hand per the safetensors spec) and records reference
outputs in expected.json:

  gpt2-tiny, llama-tiny        logits for a batch of two prompts + greedy continuations
  bert-tiny                    last hidden states, MLM logits, classifier logits, mean-pooled
                               embeddings for a right-padded batch with token types
  t5-tiny (relu, tied head)    encoder hidden states for a padded batch, decoder logits,
  t5-v1_1-tiny (gated-gelu)    greedy continuations
  t5-buckets.json              relative position buckets for both directions and several configs

Weights are random float32 (stored as F32); the references are computed in float64 from those
float32 values, so they are the exact math our float32 forward approximates.
"""
import json
import math
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "__fixtures__")
torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- safetensors (written by hand)
DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array. Layout: u64 LE header size, JSON header, raw LE bytes."""
    header = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_model(name, config, weights, expected):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    write_safetensors(os.path.join(d, "model.safetensors"), weights)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, separators=(",", ":"))
    size = os.path.getsize(os.path.join(d, "model.safetensors"))
    print(f"{name}: {len(weights)} tensors, {size} bytes")


class Params:
    """Random float32 parameters; T(name) returns the float64 torch view used by the reference."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.np = {}

    def normal(self, name, shape, std):
        self.np[name] = (self.rng.standard_normal(shape) * std).astype(np.float32)

    def norm_weight(self, name, n):
        self.np[name] = (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def T(self, name):
        return torch.from_numpy(self.np[name].astype(np.float64))


def tolist(t):
    return t.detach().to(torch.float64).numpy().round(8).tolist()


# ---------------------------------------------------------------- activations (HF ACT2FN)
def gelu_new(x):  # "gelu_new" / "gelu_pytorch_tanh": GPT-2, T5 v1.1
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_erf(x):  # "gelu": BERT
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, w, eps):  # LlamaRMSNorm / T5LayerNorm
    variance = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(variance + eps))


def attend(q, k, v, bias=None, scale=None):
    """q (B,H,Tq,D), k/v (B,H,Tk,D); bias additive broadcastable to (B,H,Tq,Tk)."""
    scores = q @ k.transpose(-1, -2)
    if scale is not None:
        scores = scores * scale
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    return probs @ v, probs


def causal_bias(tq, tk):
    """(Tq,Tk) 0 where allowed, min where masked (bottom-right aligned)."""
    i = torch.arange(tq)[:, None] + (tk - tq)
    j = torch.arange(tk)[None, :]
    return torch.where(j <= i, 0.0, torch.finfo(torch.float64).min)


def greedy(step_logits_fn, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        logits = step_logits_fn(ids)
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):]


# ================================================================= GPT-2 (modeling_gpt2.py)
def make_gpt2():
    cfg = dict(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4, eps=1e-5)
    V, P, C, L, H = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    p = Params(1)
    p.normal("wte.weight", (V, C), 0.3)
    p.normal("wpe.weight", (P, C), 1.0)
    for i in range(L):
        h = f"h.{i}."
        p.norm_weight(h + "ln_1.weight", C)
        p.normal(h + "ln_1.bias", (C,), 0.1)
        p.normal(h + "attn.c_attn.weight", (C, 3 * C), 1.0 / math.sqrt(C))  # Conv1D: (in, out)
        p.normal(h + "attn.c_attn.bias", (3 * C,), 0.1)
        p.normal(h + "attn.c_proj.weight", (C, C), 1.0 / math.sqrt(C))
        p.normal(h + "attn.c_proj.bias", (C,), 0.1)
        p.norm_weight(h + "ln_2.weight", C)
        p.normal(h + "ln_2.bias", (C,), 0.1)
        p.normal(h + "mlp.c_fc.weight", (C, 4 * C), 1.0 / math.sqrt(C))
        p.normal(h + "mlp.c_fc.bias", (4 * C,), 0.1)
        p.normal(h + "mlp.c_proj.weight", (4 * C, C), 1.0 / math.sqrt(4 * C))
        p.normal(h + "mlp.c_proj.bias", (C,), 0.1)
    p.norm_weight("ln_f.weight", C)
    p.normal("ln_f.bias", (C,), 0.1)
    T = p.T

    def forward(ids):  # ids (B,T) -> logits (B,T,V), no padding, positions 0..T-1
        B, Tn = ids.shape
        x = T("wte.weight")[ids] + T("wpe.weight")[torch.arange(Tn)][None]
        D = C // H
        for i in range(L):
            h = f"h.{i}."
            a = layer_norm(x, T(h + "ln_1.weight"), T(h + "ln_1.bias"), cfg["eps"])
            qkv = a @ T(h + "attn.c_attn.weight") + T(h + "attn.c_attn.bias")  # Conv1D: x @ W + b
            q, k, v = qkv.split(C, dim=2)
            q, k, v = (t.view(B, Tn, H, D).transpose(1, 2) for t in (q, k, v))
            y, _ = attend(q, k, v, causal_bias(Tn, Tn), 1.0 / math.sqrt(D))
            y = y.transpose(1, 2).reshape(B, Tn, C)
            x = x + (y @ T(h + "attn.c_proj.weight") + T(h + "attn.c_proj.bias"))
            m = layer_norm(x, T(h + "ln_2.weight"), T(h + "ln_2.bias"), cfg["eps"])
            m = gelu_new(m @ T(h + "mlp.c_fc.weight") + T(h + "mlp.c_fc.bias"))
            x = x + (m @ T(h + "mlp.c_proj.weight") + T(h + "mlp.c_proj.bias"))
        x = layer_norm(x, T("ln_f.weight"), T("ln_f.bias"), cfg["eps"])
        return x @ T("wte.weight").T  # tied lm_head

    input_ids = torch.tensor([[5, 17, 60, 3, 88, 41, 2, 9], [1, 96, 33, 33, 70, 12, 50, 0]])
    logits = forward(input_ids)
    prompt = [5, 17, 60, 3]
    cont = greedy(lambda ids: forward(torch.tensor([ids]))[0, -1], prompt, 10)

    weights = dict(p.np)
    for i in range(L):  # the causal-mask buffers older checkpoints store (must be ignored)
        weights[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, P, P), dtype=np.uint8))
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 0,
        "embd_pdrop": 0.1,
        "eos_token_id": 0,
        "initializer_range": 0.02,
        "layer_norm_epsilon": cfg["eps"],
        "model_type": "gpt2",
        "n_ctx": P,
        "n_embd": C,
        "n_head": H,
        "n_inner": None,
        "n_layer": L,
        "n_positions": P,
        "resid_pdrop": 0.1,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "use_cache": True,
        "vocab_size": V,
    }
    expected = {"input_ids": input_ids.tolist(), "logits": tolist(logits), "prompt": prompt, "greedy": cont}
    save_model("gpt2-tiny", config, weights, expected)


# ================================================================= Llama (modeling_llama.py)
def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def make_llama():
    V, C, L, H, Hkv, I, P = 97, 32, 2, 4, 2, 64, 64
    D = C // H
    eps, theta = 1e-6, 10000.0
    p = Params(2)
    p.normal("model.embed_tokens.weight", (V, C), 0.3)
    for i in range(L):
        h = f"model.layers.{i}."
        p.norm_weight(h + "input_layernorm.weight", C)
        p.normal(h + "self_attn.q_proj.weight", (H * D, C), 1.0 / math.sqrt(C))  # nn.Linear: (out, in)
        p.normal(h + "self_attn.k_proj.weight", (Hkv * D, C), 1.0 / math.sqrt(C))
        p.normal(h + "self_attn.v_proj.weight", (Hkv * D, C), 1.0 / math.sqrt(C))
        p.normal(h + "self_attn.o_proj.weight", (C, H * D), 1.0 / math.sqrt(C))
        p.norm_weight(h + "post_attention_layernorm.weight", C)
        p.normal(h + "mlp.gate_proj.weight", (I, C), 1.0 / math.sqrt(C))
        p.normal(h + "mlp.up_proj.weight", (I, C), 1.0 / math.sqrt(C))
        p.normal(h + "mlp.down_proj.weight", (C, I), 1.0 / math.sqrt(I))
    p.norm_weight("model.norm.weight", C)
    p.normal("lm_head.weight", (V, C), 1.0 / math.sqrt(C))
    T = p.T

    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(torch.float64) / D))

    def forward(ids):
        B, Tn = ids.shape
        x = T("model.embed_tokens.weight")[ids]
        pos = torch.arange(Tn).to(torch.float64)
        freqs = pos[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        lin = lambda t, n: t @ T(n).T  # noqa: E731  nn.Linear without bias
        for i in range(L):
            h = f"model.layers.{i}."
            a = rms_norm(x, T(h + "input_layernorm.weight"), eps)
            q = lin(a, h + "self_attn.q_proj.weight").view(B, Tn, H, D).transpose(1, 2)
            k = lin(a, h + "self_attn.k_proj.weight").view(B, Tn, Hkv, D).transpose(1, 2)
            v = lin(a, h + "self_attn.v_proj.weight").view(B, Tn, Hkv, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // Hkv, dim=1)  # repeat_kv
            v = v.repeat_interleave(H // Hkv, dim=1)
            y, _ = attend(q, k, v, causal_bias(Tn, Tn), 1.0 / math.sqrt(D))
            y = y.transpose(1, 2).reshape(B, Tn, H * D)
            x = x + lin(y, h + "self_attn.o_proj.weight")
            m = rms_norm(x, T(h + "post_attention_layernorm.weight"), eps)
            m = torch.nn.functional.silu(lin(m, h + "mlp.gate_proj.weight")) * lin(m, h + "mlp.up_proj.weight")
            x = x + lin(m, h + "mlp.down_proj.weight")
        x = rms_norm(x, T("model.norm.weight"), eps)
        return lin(x, "lm_head.weight")

    input_ids = torch.tensor([[1, 17, 60, 3, 88, 41, 2, 9, 30, 31], [1, 96, 33, 33, 70, 12, 50, 0, 4, 4]])
    logits = forward(input_ids)
    prompt = [1, 17, 60, 3]
    cont = greedy(lambda ids: forward(torch.tensor([ids]))[0, -1], prompt, 12)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": D,
        "hidden_act": "silu",
        "hidden_size": C,
        "initializer_range": 0.02,
        "intermediate_size": I,
        "max_position_embeddings": P,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "num_key_value_heads": Hkv,
        "pretraining_tp": 1,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": V,
    }
    expected = {"input_ids": input_ids.tolist(), "logits": tolist(logits), "prompt": prompt, "greedy": cont}
    save_model("llama-tiny", config, p.np, expected)


# ================================================================= BERT (modeling_bert.py)
def make_bert():
    V, C, L, H, I, P, TV, NL = 97, 32, 2, 4, 64, 40, 2, 3
    D = C // H
    eps = 1e-12
    p = Params(3)
    e = "bert.embeddings."
    p.normal(e + "word_embeddings.weight", (V, C), 1.0)
    p.normal(e + "position_embeddings.weight", (P, C), 0.5)
    p.normal(e + "token_type_embeddings.weight", (TV, C), 0.5)
    p.norm_weight(e + "LayerNorm.weight", C)
    p.normal(e + "LayerNorm.bias", (C,), 0.1)

    def linear(n, o, i):
        p.normal(n + ".weight", (o, i), 1.0 / math.sqrt(i))
        p.normal(n + ".bias", (o,), 0.1)

    def ln(n):
        p.norm_weight(n + ".weight", C)
        p.normal(n + ".bias", (C,), 0.1)

    for i in range(L):
        h = f"bert.encoder.layer.{i}."
        for n in ("query", "key", "value"):
            linear(h + "attention.self." + n, C, C)
        linear(h + "attention.output.dense", C, C)
        ln(h + "attention.output.LayerNorm")
        linear(h + "intermediate.dense", I, C)
        linear(h + "output.dense", C, I)
        ln(h + "output.LayerNorm")
    linear("bert.pooler.dense", C, C)
    linear("cls.predictions.transform.dense", C, C)
    ln("cls.predictions.transform.LayerNorm")
    p.normal("cls.predictions.bias", (V,), 0.1)
    linear("classifier", NL, C)
    T = p.T
    lin = lambda t, n: t @ T(n + ".weight").T + T(n + ".bias")  # noqa: E731
    lnf = lambda t, n: layer_norm(t, T(n + ".weight"), T(n + ".bias"), eps)  # noqa: E731

    def encode(ids, tt, mask):
        B, Tn = ids.shape
        x = T(e + "word_embeddings.weight")[ids] + T(e + "token_type_embeddings.weight")[tt]
        x = x + T(e + "position_embeddings.weight")[torch.arange(Tn)][None]
        x = lnf(x, e + "LayerNorm")
        ext = (1.0 - mask[:, None, None, :].to(torch.float64)) * torch.finfo(torch.float64).min
        for i in range(L):
            h = f"bert.encoder.layer.{i}."
            q, k, v = (lin(x, h + "attention.self." + n).view(B, Tn, H, D).transpose(1, 2) for n in ("query", "key", "value"))
            y, _ = attend(q, k, v, ext, 1.0 / math.sqrt(D))
            y = y.transpose(1, 2).reshape(B, Tn, C)
            x = lnf(lin(y, h + "attention.output.dense") + x, h + "attention.output.LayerNorm")  # post-LN
            m = gelu_erf(lin(x, h + "intermediate.dense"))
            x = lnf(lin(m, h + "output.dense") + x, h + "output.LayerNorm")
        return x

    ids = torch.tensor([[2, 17, 60, 3, 88, 41, 9, 4], [2, 33, 70, 12, 4, 0, 0, 0]])
    tt = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]])
    hidden = encode(ids, tt, mask)
    t = gelu_erf(lin(hidden, "cls.predictions.transform.dense"))
    t = lnf(t, "cls.predictions.transform.LayerNorm")
    mlm = t @ T(e + "word_embeddings.weight").T + T("cls.predictions.bias")  # decoder tied to word embeddings
    pooled = torch.tanh(lin(hidden[:, 0], "bert.pooler.dense"))
    cls_logits = lin(pooled, "classifier")
    m = mask[:, :, None].to(torch.float64)
    mean = (hidden * m).sum(1) / m.sum(1)

    weights = dict(p.np)
    weights["bert.embeddings.position_ids"] = np.arange(P, dtype=np.int64)[None]  # stored buffer, ignored
    config = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": C,
        "id2label": {str(i): f"LABEL_{i}" for i in range(NL)},
        "initializer_range": 0.02,
        "intermediate_size": I,
        "label2id": {f"LABEL_{i}": i for i in range(NL)},
        "layer_norm_eps": eps,
        "max_position_embeddings": P,
        "model_type": "bert",
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": TV,
        "use_cache": True,
        "vocab_size": V,
    }
    expected = {
        "input_ids": ids.tolist(),
        "token_type_ids": tt.tolist(),
        "attention_mask": mask.tolist(),
        "hidden": tolist(hidden),
        "mlm_logits": tolist(mlm),
        "classifier_logits": tolist(cls_logits),
        "mean_pooled": tolist(mean),
    }
    save_model("bert-tiny", config, weights, expected)


# ================================================================= T5 (modeling_t5.py)
def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(
        relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1)
    )
    relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


def make_buckets():
    rel = torch.arange(-300, 301)
    out = {"relative_positions": rel.tolist(), "cases": []}
    for nb, md in ((32, 128), (8, 16), (16, 40)):
        for bidir in (True, False):
            with torch.no_grad():
                old = torch.get_default_dtype()
                torch.set_default_dtype(torch.float32)  # HF computes the log in float32
                b = relative_position_bucket(rel, bidir, nb, md)
                torch.set_default_dtype(old)
            out["cases"].append({"num_buckets": nb, "max_distance": md, "bidirectional": bidir, "buckets": b.tolist()})
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "t5-buckets.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))


def make_t5(name, gated, tied, seed):
    V, C, DKV, H, FF, L, LD, NB, MD = 97, 32, 8, 4, 64, 2, 3, 8, 16
    eps = 1e-6
    inner = H * DKV
    p = Params(seed)
    p.normal("shared.weight", (V, C), 0.3 if tied else 1.0)

    def attn(prefix, bias):
        p.normal(prefix + "q.weight", (inner, C), 1.0 / math.sqrt(C))
        p.normal(prefix + "k.weight", (inner, C), 1.0 / math.sqrt(C))
        p.normal(prefix + "v.weight", (inner, C), 1.0 / math.sqrt(C))
        p.normal(prefix + "o.weight", (C, inner), 1.0 / math.sqrt(inner))
        if bias:
            p.normal(prefix + "relative_attention_bias.weight", (NB, H), 1.0)

    def ff(prefix):
        if gated:
            p.normal(prefix + "DenseReluDense.wi_0.weight", (FF, C), 1.0 / math.sqrt(C))
            p.normal(prefix + "DenseReluDense.wi_1.weight", (FF, C), 1.0 / math.sqrt(C))
        else:
            p.normal(prefix + "DenseReluDense.wi.weight", (FF, C), 1.0 / math.sqrt(C))
        p.normal(prefix + "DenseReluDense.wo.weight", (C, FF), 1.0 / math.sqrt(FF))
        p.norm_weight(prefix + "layer_norm.weight", C)

    for i in range(L):
        b = f"encoder.block.{i}.layer."
        attn(b + "0.SelfAttention.", i == 0)
        p.norm_weight(b + "0.layer_norm.weight", C)
        ff(b + "1.")
    p.norm_weight("encoder.final_layer_norm.weight", C)
    for i in range(LD):
        b = f"decoder.block.{i}.layer."
        attn(b + "0.SelfAttention.", i == 0)
        p.norm_weight(b + "0.layer_norm.weight", C)
        attn(b + "1.EncDecAttention.", False)
        p.norm_weight(b + "1.layer_norm.weight", C)
        ff(b + "2.")
    p.norm_weight("decoder.final_layer_norm.weight", C)
    if not tied:
        p.normal("lm_head.weight", (V, C), 1.0 / math.sqrt(C))
    T = p.T
    lin = lambda t, n: t @ T(n).T  # noqa: E731
    NEG = torch.finfo(torch.float64).min

    def compute_bias(prefix, q_pos, k_len, bidirectional):
        rel = torch.arange(k_len)[None, :] - q_pos[:, None]  # memory - context
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        buckets = relative_position_bucket(rel, bidirectional, NB, MD)
        torch.set_default_dtype(old)
        values = T(prefix + "relative_attention_bias.weight")[buckets]  # (q, k, H)
        return values.permute(2, 0, 1)[None]  # (1, H, q, k)

    def mha(prefix, x, kv, bias):
        B, Tq, Tk = x.shape[0], x.shape[1], kv.shape[1]
        q = lin(x, prefix + "q.weight").view(B, Tq, H, DKV).transpose(1, 2)
        k = lin(kv, prefix + "k.weight").view(B, Tk, H, DKV).transpose(1, 2)
        v = lin(kv, prefix + "v.weight").view(B, Tk, H, DKV).transpose(1, 2)
        y, _ = attend(q, k, v, bias, None)  # T5 does not scale the scores
        return lin(y.transpose(1, 2).reshape(B, Tq, inner), prefix + "o.weight")

    def feed_forward(prefix, x):
        h = rms_norm(x, T(prefix + "layer_norm.weight"), eps)
        if gated:
            h = gelu_new(lin(h, prefix + "DenseReluDense.wi_0.weight")) * lin(h, prefix + "DenseReluDense.wi_1.weight")
        else:
            h = torch.relu(lin(h, prefix + "DenseReluDense.wi.weight"))
        return x + lin(h, prefix + "DenseReluDense.wo.weight")

    def encode(ids, mask):
        Tn = ids.shape[1]
        x = T("shared.weight")[ids]
        pos_bias = compute_bias("encoder.block.0.layer.0.SelfAttention.", torch.arange(Tn), Tn, True)
        pos_bias = pos_bias + (1.0 - mask[:, None, None, :].to(torch.float64)) * NEG
        for i in range(L):
            b = f"encoder.block.{i}.layer."
            h = rms_norm(x, T(b + "0.layer_norm.weight"), eps)
            x = x + mha(b + "0.SelfAttention.", h, h, pos_bias)
            x = feed_forward(b + "1.", x)
        return rms_norm(x, T("encoder.final_layer_norm.weight"), eps)

    def decode(dec_ids, enc, enc_mask):
        Tn = dec_ids.shape[1]
        x = T("shared.weight")[dec_ids]
        self_bias = compute_bias("decoder.block.0.layer.0.SelfAttention.", torch.arange(Tn), Tn, False)
        self_bias = self_bias + causal_bias(Tn, Tn)[None, None]
        cross_bias = (1.0 - enc_mask[:, None, None, :].to(torch.float64)) * NEG
        for i in range(LD):
            b = f"decoder.block.{i}.layer."
            h = rms_norm(x, T(b + "0.layer_norm.weight"), eps)
            x = x + mha(b + "0.SelfAttention.", h, h, self_bias)
            h = rms_norm(x, T(b + "1.layer_norm.weight"), eps)
            x = x + mha(b + "1.EncDecAttention.", h, enc, cross_bias)
            x = feed_forward(b + "2.", x)
        x = rms_norm(x, T("decoder.final_layer_norm.weight"), eps)
        if tied:
            return (x * C**-0.5) @ T("shared.weight").T
        return lin(x, "lm_head.weight")

    enc_ids = torch.tensor([[13, 17, 60, 3, 88, 41, 9, 22, 30, 1], [33, 70, 12, 44, 1, 0, 0, 0, 0, 0]])
    enc_mask = (enc_ids != 0).to(torch.long)
    dec_ids = torch.tensor([[0, 5, 6, 7, 8, 9], [0, 50, 51, 52, 53, 54]])  # decoder_start_token_id = 0
    enc = encode(enc_ids, enc_mask)
    logits = decode(dec_ids, enc, enc_mask)
    cont = greedy(lambda ids: decode(torch.tensor([ids]), enc[:1], enc_mask[:1])[0, -1], [0], 12)

    config = {
        "architectures": ["T5ForConditionalGeneration"],
        "classifier_dropout": 0.0,
        "d_ff": FF,
        "d_kv": DKV,
        "d_model": C,
        "decoder_start_token_id": 0,
        "dense_act_fn": "gelu_new" if gated else "relu",
        "dropout_rate": 0.1,
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "is_gated_act": gated,
        "layer_norm_epsilon": eps,
        "model_type": "t5",
        "num_decoder_layers": LD,
        "num_heads": H,
        "num_layers": L,
        "pad_token_id": 0,
        "relative_attention_max_distance": MD,
        "relative_attention_num_buckets": NB,
        "tie_word_embeddings": tied,
        "use_cache": True,
        "vocab_size": V,
    }
    weights = dict(p.np)
    # save_pretrained keeps the tied copies of the shared embedding under these names too
    weights["encoder.embed_tokens.weight"] = p.np["shared.weight"]
    weights["decoder.embed_tokens.weight"] = p.np["shared.weight"]
    expected = {
        "input_ids": enc_ids.tolist(),
        "attention_mask": enc_mask.tolist(),
        "decoder_input_ids": dec_ids.tolist(),
        "encoder_hidden": tolist(enc),
        "logits": tolist(logits),
        "greedy": cont,
    }
    save_model(name, config, weights, expected)


if __name__ == "__main__":
    make_gpt2()
    make_llama()
    make_bert()
    make_buckets()
    make_t5("t5-tiny", gated=False, tied=True, seed=4)
    make_t5("t5-v1_1-tiny", gated=True, tied=False, seed=5)
