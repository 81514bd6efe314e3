#!/usr/bin/python3
"""Independent safetensors writer (numpy + struct, written from the format spec) producing the
fixtures the TypeScript reader/writer are checked against. Run with Debian's /usr/bin/python3:

    /usr/bin/python3 packages/core/scripts/make-safetensors-fixture.py

Writes into packages/core/src/__fixtures__/:
  reference-mixed.safetensors       every supported dtype, metadata, a 0-element and a scalar tensor
  reference-mixed.expected.json     per tensor: dtype, shape, data_offsets, exact bytes (hex), values
  reference-f16.safetensors         F32 + F16 tensors only, F16 made by numpy's astype(float16)
  reference-f16.expected.json       the float32 source values (hex bits) the F16 tensors came from

Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes of
JSON, data. The reference writer (safetensors/src/tensor.rs `prepare`) orders tensors by descending
dtype (enum order BOOL<U8<I8<F8_E5M2<F8_E4M3<I16<U16<F16<BF16<I32<U32<F32<F64<I64<U64) then by
name (byte order), serialises compact JSON (serde_json: no spaces, non-ASCII not escaped) with
"__metadata__" first, each tensor as {"dtype","shape","data_offsets"}, and pads the header with
spaces to a multiple of 8. Metadata is a Rust HashMap there (unspecified order); we sort its keys.
"""
import json
import os
import struct

import numpy as np

ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
         "I32", "U32", "F32", "F64", "I64", "U64"]
NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
      "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "__fixtures__")


def bf16_bits(f32: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even (integer arithmetic)."""
    u = f32.astype("<f4").view("<u4").astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f32)
    rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


def serialize(tensors: dict, metadata: dict | None) -> bytes:
    """tensors: name -> (dtype, shape, raw bytes)."""
    items = sorted(tensors.items(), key=lambda kv: (-ORDER.index(kv[1][0]), kv[0].encode("utf-8")))
    header = {}
    if metadata is not None:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    blobs = []
    for name, (dtype, shape, raw) in items:
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4,
                "F64": 8, "I64": 8}[dtype]
        assert len(raw) == n * size, name
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def describe(tensors: dict, blob: bytes) -> dict:
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        raw = blob[8 + n + s:8 + n + e]
        dtype = info["dtype"]
        arr = np.frombuffer(raw, dtype=NP[dtype])
        if dtype == "BF16":
            values = (arr.astype(np.uint32) << 16).view("<f4").astype(float).tolist()
        elif dtype == "BOOL":
            values = [int(v) for v in arr]
        elif dtype == "I64":
            values = [str(int(v)) for v in arr]  # exact, beyond 2^53
        else:
            values = [v if np.isfinite(v) else str(v) for v in arr.astype(float).tolist()]
        out[name] = {"dtype": dtype, "shape": info["shape"], "data_offsets": [s, e], "hex": raw.hex(),
                     "values": values}
    return {"header_length": n, "file_size": len(blob), "tensors": out}


def main() -> None:
    rng = np.random.default_rng(1234)
    f32 = np.array([[0.0, -0.0, 1.5, -2.25], [3.4028235e38, 1.17549435e-38, 1e-45, np.pi]], dtype="<f4")
    half_src = np.array([1.0, 0.1, -65504.0, 65520.0, 6.1e-5, 5.96e-8, 2.98e-8, 1.0009766, 1.0004883,
                         0.33333334, -1e-10, 70000.0], dtype="<f4")
    bf_src = np.array([[1.0, 0.1], [-3.0e38, 1.00390625], [1.01171875, np.float32(1e-40)]], dtype="<f4")
    mixed = {
        "a.weight": ("F32", [2, 4], f32.tobytes()),
        "a.bias": ("F32", [3], rng.standard_normal(3).astype("<f4").tobytes()),
        "empty": ("F32", [0, 3], b""),
        "scalar": ("F32", [], np.array([42.5], dtype="<f4").tobytes()),
        "half": ("F16", [12], half_src.astype("<f2").tobytes()),
        "bf": ("BF16", [3, 2], bf16_bits(bf_src).astype("<u2").tobytes()),
        "double": ("F64", [2], np.array([np.pi, -1e300], dtype="<f8").tobytes()),
        "i64": ("I64", [3], np.array([-(2**62) - 1, 0, 2**53 + 1], dtype="<i8").tobytes()),
        "i32": ("I32", [2, 2], np.array([[-(2**31), 7], [2**31 - 1, -1]], dtype="<i4").tobytes()),
        "i16": ("I16", [3], np.array([-32768, 12345, 32767], dtype="<i2").tobytes()),
        "i8": ("I8", [4], np.array([-128, -1, 0, 127], dtype="i1").tobytes()),
        "u8": ("U8", [3], np.array([0, 128, 255], dtype="u1").tobytes()),
        "mask": ("BOOL", [5], np.array([True, False, True, True, False], dtype="?").tobytes()),
        "ñame.ü": ("F32", [1], np.array([-7.0], dtype="<f4").tobytes()),
    }
    meta = {"format": "pt", "source": "numpy-struct", "note": "quotes \" and \\ and ünïcode"}
    blob = serialize(mixed, meta)
    with open(os.path.join(OUT, "reference-mixed.safetensors"), "wb") as f:
        f.write(blob)
    expected = describe(mixed, blob)
    expected["metadata"] = meta
    with open(os.path.join(OUT, "reference-mixed.expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # F32 + F16 from float32 sources: our writer must produce these exact bytes from the sources.
    w = rng.standard_normal((4, 5)).astype("<f4")
    h = (rng.standard_normal(17) * 1000).astype("<f4")
    f16 = {
        "transformer.h.0.attn.c_attn.weight": ("F32", [4, 5], w.tobytes()),
        "transformer.h.0.attn.c_attn.bias": ("F16", [17], h.astype("<f2").tobytes()),
        "lm_head.weight": ("F16", [12], half_src.astype("<f2").tobytes()),
        "wte": ("F32", [2, 4], f32.tobytes()),
    }
    blob = serialize(f16, {"format": "pt"})
    with open(os.path.join(OUT, "reference-f16.safetensors"), "wb") as f:
        f.write(blob)
    sources = {
        "transformer.h.0.attn.c_attn.weight": w.view("<u4").ravel().tolist(),
        "transformer.h.0.attn.c_attn.bias": h.view("<u4").ravel().tolist(),
        "lm_head.weight": half_src.view("<u4").ravel().tolist(),
        "wte": f32.view("<u4").ravel().tolist(),
    }
    shapes = {k: v[1] for k, v in f16.items()}
    dtypes = {k: v[0] for k, v in f16.items()}
    with open(os.path.join(OUT, "reference-f16.expected.json"), "w") as f:
        json.dump({"metadata": {"format": "pt"}, "dtypes": dtypes, "shapes": shapes,
                   "float32_bits": sources}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
