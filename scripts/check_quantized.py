#!/usr/bin/env python3
"""Checks a folder written by `blip2 convert` outside this project, with numpy and torch only.

    python3 scripts/check_quantized.py CONVERTED_DIR FLOAT_SOURCE_DIR

For every weight the folder quantizes, `dequantize` (the snippet of docs/quantization.md) reads codes and
scales back to float32, and torch recomputes the scheme from the float checkpoint (s = f16(absmax / qmax) per
group of 32 input columns, q = clamp(round(w / s), -qmax, qmax), w' = q * s): the two must be equal bit for
bit. Every other tensor must equal the source's (after the f16 rounding of `--dtype f16` where the folder
stores F16). Prints one line per checked group and exits non-zero on the first mismatch.
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors import safe_open


def tensor(folder, key):
    """One tensor of a HF folder (single file or sharded), as numpy."""
    index = os.path.join(folder, "model.safetensors.index.json")
    name = json.load(open(index))["weight_map"][key] if os.path.exists(index) else "model.safetensors"
    with safe_open(os.path.join(folder, name), "numpy") as f:
        return f.get_tensor(key)


# --- the snippet of docs/quantization.md -------------------------------------------------------------
def dequantize(folder, key, in_features):
    """float32 [out, in_features] weight `key` of a converted folder."""
    scheme = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]["scheme"]
    codes, scales = tensor(folder, key), tensor(folder, key + "_scales")
    if scheme == "q4":  # two 4-bit two's complement codes per byte, the even column in the low nibble
        nibbles = np.stack([codes & 15, codes >> 4], axis=-1).reshape(codes.shape[0], -1).astype(np.int16)
        codes = (nibbles ^ 8) - 8
    groups = codes.astype(np.float32).reshape(codes.shape[0], -1, 32)  # rows hold whole groups of 32
    return (groups * scales.astype(np.float32)[:, :, None]).reshape(codes.shape[0], -1)[:, :in_features]
# ------------------------------------------------------------------------------------------------------


def reference(w, qmax):
    """The scheme in torch, from the float weight [out, in]."""
    out, k = w.shape
    pad = (-k) % 32
    g = torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, 32)
    absmax = g.abs().amax(dim=-1, keepdim=True)  # padding is 0: the short last group's absmax is its own
    s = (absmax / qmax).to(torch.float16).to(torch.float32)
    q = torch.where(s == 0, torch.zeros_like(g), torch.round(g / s).clamp(-qmax, qmax))
    return (q * s).reshape(out, -1)[:, :k]


def main(converted, source):
    config = json.load(open(os.path.join(converted, "config.json")))
    qc = config["quantization_config"]
    qmax = {"q8": 127, "q4": 7}[qc["scheme"]]
    import re

    pattern = re.compile("^(?:" + "|".join(re.escape(m).replace(r"\*", r"\d+") for m in qc["modules"]) + r")\.weight$")
    index = os.path.join(converted, "model.safetensors.index.json")
    keys = list(json.load(open(index))["weight_map"]) if os.path.exists(index) else None
    quantized = other = 0
    for key in keys:
        if key.endswith("_scales"):
            continue
        src = torch.from_numpy(tensor(source, key).astype(np.float32))
        if pattern.match(key):
            got = torch.from_numpy(dequantize(converted, key, src.shape[1]))
            want = reference(src, qmax)
            if not torch.equal(got, want):
                print(f"MISMATCH {key}: max abs diff {(got - want).abs().max().item()}")
                return 1
            quantized += 1
        else:
            got = tensor(converted, key)
            want = src.numpy().astype(got.dtype)
            if not np.array_equal(got, want):
                print(f"MISMATCH {key} ({got.dtype})")
                return 1
            other += 1
    print(f"{converted}: {qc['scheme']}, {quantized} quantized weights equal torch's quantize-dequantize, {other} other tensors equal the source")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
