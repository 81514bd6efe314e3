#!/usr/bin/python3
"""Checks that a Typeformer-saved folder is what PyTorch-side tools expect, using only torch + struct.

transformers, PEFT and vLLM are not installable on the Typeformer dev machine, so this script re-states
the parts of their loading contract that a checkpoint must satisfy (read from their sources) and checks
them with plain torch:

  model folder (config.json + model.safetensors or model.safetensors.index.json + shards):
    * safetensors framing: 8-byte little-endian header length, JSON header, contiguous data offsets that
      cover the byte buffer exactly, known dtypes, and __metadata__["format"] == "pt" (transformers'
      load_state_dict rejects other formats)
    * config.json: model_type, architectures and the keys transformers' GPT2Config / LlamaConfig read
    * tensor names and shapes of GPT2LMHeadModel / LlamaForCausalLM computed from the config
      (GPT-2 names may omit the "transformer." prefix, as the released gpt2 checkpoint does; a tied
      head may be omitted)
    * every tensor loads into torch (torch.frombuffer) and is finite
  adapter folder (adapter_config.json + adapter_model.safetensors), given with --adapter:
    * PEFT LoraConfig keys; tensors base_model.model.<module>.lora_A.weight (r, in) and
      lora_B.weight (out, r) for modules that exist in the base model and match target_modules

Usage: /usr/bin/python3 docs/scripts/check_hf_layout.py MODEL_DIR [--adapter ADAPTER_DIR]
Exit status 0 when every check passes; each failure is printed.
"""
import json
import math
import os
import re
import struct
import sys

import torch

DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def read_safetensors(path):
    """Returns (metadata, {name: torch.Tensor}) after checking the framing."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", None)
    check(metadata is not None and metadata.get("format") == "pt",
          f"{path}: __metadata__ format is {metadata!r}, transformers expects {{'format': 'pt'}}")
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in header.items())
    end = 0
    for start, stop, name in spans:
        check(start == end, f"{path}: {name} starts at {start}, expected {end} (gap or overlap)")
        end = stop
    check(end == len(data), f"{path}: data ends at {end} but the buffer has {len(data)} bytes")
    tensors = {}
    for name, info in header.items():
        if not check(info["dtype"] in DTYPES, f"{path}: {name} has unknown dtype {info['dtype']}"):
            continue
        dtype, size = DTYPES[info["dtype"]]
        start, stop = info["data_offsets"]
        count = math.prod(info["shape"]) if info["shape"] else 1
        if not check(stop - start == count * size, f"{path}: {name} has {stop - start} bytes for shape {info['shape']}"):
            continue
        buf = bytearray(data[start:stop])
        t = torch.frombuffer(buf, dtype=dtype) if count > 0 else torch.empty(0, dtype=dtype)
        t = t.reshape(info["shape"])
        if t.is_floating_point():
            check(bool(torch.isfinite(t.float()).all()), f"{path}: {name} holds non-finite values")
        tensors[name] = t
    return metadata, tensors


def read_model_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            _, part = read_safetensors(os.path.join(model_dir, shard))
            for name in part:
                check(weight_map.get(name) == shard, f"{shard}: {name} is not mapped to this shard in the index")
            tensors.update(part)
        check(set(weight_map) == set(tensors), "index weight_map and shard contents differ")
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))[1]


# Keys the transformers config classes read (configuration_gpt2.py / configuration_llama.py).
CONFIG_KEYS = {
    "gpt2": ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
             "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon", "initializer_range",
             "bos_token_id", "eos_token_id"],
    "llama": ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps",
              "tie_word_embeddings", "rope_theta", "rope_scaling", "attention_bias"],
}
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


def expected_gpt2(c):
    d, V, P = c["n_embd"], c["vocab_size"], c["n_positions"]
    inner = c.get("n_inner") or 4 * d
    shapes = {"wte.weight": [V, d], "wpe.weight": [P, d], "ln_f.weight": [d], "ln_f.bias": [d]}
    for i in range(c["n_layer"]):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": [d], p + "ln_1.bias": [d], p + "ln_2.weight": [d], p + "ln_2.bias": [d],
            # HF GPT-2 uses Conv1D: weights are (in, out)
            p + "attn.c_attn.weight": [d, 3 * d], p + "attn.c_attn.bias": [3 * d],
            p + "attn.c_proj.weight": [d, d], p + "attn.c_proj.bias": [d],
            p + "mlp.c_fc.weight": [d, inner], p + "mlp.c_fc.bias": [inner],
            p + "mlp.c_proj.weight": [inner, d], p + "mlp.c_proj.bias": [d],
        })
    return {"transformer." + k: v for k, v in shapes.items()}, {"lm_head.weight": [V, d]}


def expected_llama(c):
    d, V, I = c["hidden_size"], c["vocab_size"], c["intermediate_size"]
    H, Hkv = c["num_attention_heads"], c.get("num_key_value_heads") or c["num_attention_heads"]
    hd = c.get("head_dim") or d // H
    shapes = {"model.embed_tokens.weight": [V, d], "model.norm.weight": [d]}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        # nn.Linear: weights are (out, in)
        shapes.update({
            p + "input_layernorm.weight": [d], p + "post_attention_layernorm.weight": [d],
            p + "self_attn.q_proj.weight": [H * hd, d], p + "self_attn.k_proj.weight": [Hkv * hd, d],
            p + "self_attn.v_proj.weight": [Hkv * hd, d], p + "self_attn.o_proj.weight": [d, H * hd],
            p + "mlp.gate_proj.weight": [I, d], p + "mlp.up_proj.weight": [I, d], p + "mlp.down_proj.weight": [d, I],
        })
    head = {"lm_head.weight": [V, d]}
    if not c.get("tie_word_embeddings", False):
        shapes.update(head)
        head = {}
    return shapes, head


def check_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    mt = config.get("model_type")
    if not check(mt in CONFIG_KEYS, f"config.json model_type {mt!r}: this script knows gpt2 and llama"):
        return None, None
    for key in CONFIG_KEYS[mt]:
        check(key in config, f"config.json lacks {key!r} ({mt})")
    check(config.get("architectures") == [ARCHITECTURES[mt]],
          f"config.json architectures {config.get('architectures')!r}, expected [{ARCHITECTURES[mt]!r}]")
    tensors = read_model_weights(model_dir)
    required, optional = expected_gpt2(config) if mt == "gpt2" else expected_llama(config)
    names = {}
    for name in tensors:
        canonical = name
        if mt == "gpt2" and not name.startswith("transformer.") and not name.startswith("lm_head"):
            canonical = "transformer." + name  # what transformers' prefix handling and vLLM's gpt2 loader do
        names[canonical] = name
    for name, shape in {**required, **optional}.items():
        if name not in names:
            check(name in optional, f"missing tensor {name} {shape}")
            continue
        got = list(tensors[names[name]].shape)
        check(got == shape, f"{names[name]}: shape {got}, expected {shape}")
    for name in names:
        check(name in required or name in optional, f"unexpected tensor {names[name]}")
    print(f"{model_dir}: {mt}, {len(tensors)} tensors, "
          f"{sum(t.numel() for t in tensors.values()):,} parameters, dtypes {sorted({str(t.dtype) for t in tensors.values()})}")
    return config, {canonical: tensors[stored] for canonical, stored in names.items()}


PEFT_KEYS = ["peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
             "fan_in_fan_out", "base_model_name_or_path", "modules_to_save", "use_rslora"]


def check_adapter(adapter_dir, config, base):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        ac = json.load(f)
    for key in PEFT_KEYS:
        check(key in ac, f"adapter_config.json lacks {key!r}")
    check(ac.get("peft_type") == "LORA", f"peft_type {ac.get('peft_type')!r}, expected 'LORA'")
    _, tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    targets = ac.get("target_modules") or []
    r = ac.get("r")
    modules = set()
    for name, t in tensors.items():
        m = re.fullmatch(r"base_model\.model\.(.+)\.lora_([AB])\.weight", name)
        if not check(m is not None, f"adapter tensor {name} is not base_model.model.<module>.lora_[AB].weight"):
            continue
        module, which = m.group(1), m.group(2)
        modules.add(module)
        leaf = module.split(".")[-1]
        if isinstance(targets, list):
            check(leaf in targets or module in targets, f"{module} is not in target_modules {targets}")
        weight = base.get(module + ".weight") if base else None
        if not check(weight is not None, f"{module}.weight does not exist in the base model"):
            continue
        w_in, w_out = (weight.shape[0], weight.shape[1]) if ac.get("fan_in_fan_out") else (weight.shape[1], weight.shape[0])
        expected = [r, w_in] if which == "A" else [w_out, r]
        check(list(t.shape) == expected, f"{name}: shape {list(t.shape)}, expected {expected}")
    for module in modules:
        for which in "AB":
            check(f"base_model.model.{module}.lora_{which}.weight" in tensors, f"{module} lacks lora_{which}")
    print(f"{adapter_dir}: LoRA r={r} alpha={ac.get('lora_alpha')} on {len(modules)} modules "
          f"({', '.join(sorted({m.split('.')[-1] for m in modules}))}), fan_in_fan_out={ac.get('fan_in_fan_out')}")


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    model_dir = argv[0]
    config, base = check_model(model_dir)
    if "--adapter" in argv:
        check_adapter(argv[argv.index("--adapter") + 1], config, base)
    for f in failures:
        print("FAIL", f)
    print("ok" if not failures else f"{len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
