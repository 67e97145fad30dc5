#!/usr/bin/env python3
"""Checks a folder written by `blip2 convert` outside this project, with numpy, torch and transformers only.

    python3 scripts/check_quantized.py CONVERTED_DIR FLOAT_SOURCE_DIR [--fixture FIXTURE_DIR | --weights-only]

1. Weights. For every weight the folder quantizes, `dequantize` (the snippet of docs/quantization.md) reads codes
   and scales back to float32, and torch recomputes the scheme from the float source (s = f16(absmax / qmax) per
   group of 32 input columns, q = clamp(round_half_even(w / s), -qmax, qmax), q = 0 where s == 0, w' = q * s):
   the two must be equal bit for bit. Every other tensor must equal the source's (after the f16 rounding of
   `--dtype f16` where the folder stores F16).
2. transformers. `from_pretrained` on the folder as it is (transformers does not know the `blip2-webgpu`
   quantization method: what it does is reported), then the folder dequantized into an ordinary
   Blip2ForConditionalGeneration (the config without `quantization_config`, strict state-dict load).
3. With `--fixture` (a test fixture that has quantized.json; convert it with `--dtype f32` so that the float
   tensors are the source's exactly): that model's greedy and 3-beam new tokens for every case must equal the
   fixture's references, which transformers made by quantize-dequantizing the source in PyTorch.

`--weights-only` does step 1 alone, one tensor at a time (the full-size model: steps 2-3 would hold the 15 GB
float32 model twice). Prints what it checked; exits non-zero at the first mismatch.
"""
import copy
import json
import os
import re
import sys

import numpy as np
import torch
from safetensors import safe_open


def shard_of(folder, key):
    index = os.path.join(folder, "model.safetensors.index.json")
    return json.load(open(index))["weight_map"][key] if os.path.exists(index) else "model.safetensors"


def tensor(folder, key):
    """One tensor of a HF folder (single file or sharded), as numpy."""
    with safe_open(os.path.join(folder, shard_of(folder, key)), "numpy") as f:
        return f.get_tensor(key)


def keys_of(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        return list(json.load(open(index))["weight_map"])
    with safe_open(os.path.join(folder, "model.safetensors"), "numpy") as f:
        return list(f.keys())


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
    """The scheme in torch, from the float weight [out, in] (torch.round rounds half to even)."""
    out, k = w.shape
    pad = (-k) % 32
    g = torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, 32)
    absmax = g.abs().amax(dim=-1, keepdim=True)  # padding is 0: the short last group's absmax is its own
    s = (absmax / qmax).to(torch.float16).to(torch.float32)
    q = torch.where(s == 0, torch.zeros_like(g), torch.round(g / s).clamp(-qmax, qmax))
    return (q * s).reshape(out, -1)[:, :k]


def module_pattern(qc):
    return re.compile("^(?:" + "|".join(re.escape(m).replace(r"\*", r"\d+") for m in qc["modules"]) + r")\.weight$")


def check_weights(converted, source, keep=True):
    """Step 1; returns the dequantized float32 state dict of the folder (with `keep`)."""
    qc = json.load(open(os.path.join(converted, "config.json")))["quantization_config"]
    qmax = {"q8": 127, "q4": 7}[qc["scheme"]]
    pattern = module_pattern(qc)
    state, quantized, other = {}, 0, 0
    for key in keys_of(converted):
        if key.endswith("_scales"):
            continue
        src = torch.from_numpy(tensor(source, key).astype(np.float32))
        if pattern.match(key):
            got = torch.from_numpy(dequantize(converted, key, src.shape[1]))
            want = reference(src, qmax)
            if not torch.equal(got, want):
                sys.exit(f"MISMATCH {key}: max abs diff {(got - want).abs().max().item()}")
            quantized += 1
        else:
            stored = tensor(converted, key)
            if not np.array_equal(stored, src.numpy().astype(stored.dtype)):
                sys.exit(f"MISMATCH {key} ({stored.dtype})")
            got = torch.from_numpy(stored.astype(np.float32))
            other += 1
        if keep:
            state[key] = got
    if quantized == 0:
        sys.exit(f"{converted}: no quantized weight found")
    print(f"{converted}: {qc['scheme']}: {quantized} quantized weights equal torch's quantize-dequantize of the source bit for bit, {other} other tensors equal the source")
    return state


def load_in_transformers(converted, state):
    """Step 2: the folder as it is, then dequantized into an ordinary model."""
    import transformers
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    try:
        Blip2ForConditionalGeneration.from_pretrained(converted)
        print(f"transformers {transformers.__version__}: from_pretrained(folder) loaded it (unexpected: check what it did with the codes)")
    except Exception as e:  # what transformers says about a method it does not know
        print(f"transformers {transformers.__version__}: from_pretrained(folder) refuses it: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    cfg = json.load(open(os.path.join(converted, "config.json")))
    cfg.pop("quantization_config")
    model = Blip2ForConditionalGeneration(Blip2Config.from_dict(cfg)).float().eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"language_model.lm_head.weight"}  # tied to the token embeddings, not stored
    if unexpected or set(missing) - tied:
        sys.exit(f"state dict does not fit: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    model.tie_weights()
    print(f"dequantized into Blip2ForConditionalGeneration: {len(state)} tensors, strict apart from the tied lm_head")
    return model


def settings(gen, **kwargs):
    """The folder's generation config with the fixture's settings (as the references were made)."""
    g = copy.deepcopy(gen)
    g.update(**kwargs)
    return g


@torch.no_grad()
def check_fixture(model, converted, fixture):
    """Step 3: greedy and 3-beam new tokens against the fixture's quantized.json."""
    from transformers import GenerationConfig

    scheme = json.load(open(os.path.join(converted, "config.json")))["quantization_config"]["scheme"]
    manifest = json.load(open(os.path.join(fixture, "cases.json")))
    refs = json.load(open(os.path.join(fixture, "quantized.json")))["schemes"][scheme]["cases"]
    gen = GenerationConfig.from_pretrained(converted)
    n = 0
    with safe_open(os.path.join(fixture, "expected.safetensors"), "pt") as ex:
        for ref in refs:
            case = next(c for c in manifest["cases"] if c["name"] == ref["name"])
            inputs = {"pixel_values": ex.get_tensor(f"{case['name']}.pixel_values").float(), "input_ids": torch.tensor([case["input_ids"]])}
            L = len(case["input_ids"])
            greedy = model.generate(**inputs, generation_config=settings(gen, max_new_tokens=len(ref["greedy"]["new_tokens"]), do_sample=False, num_beams=1))
            beam = model.generate(**inputs, generation_config=settings(gen, max_new_tokens=len(ref["beam"]["new_tokens"]), do_sample=False, num_beams=3))
            for name, out, want in (("greedy", greedy, ref["greedy"]["new_tokens"]), ("beam", beam, ref["beam"]["new_tokens"])):
                got = out[0, L:].tolist()
                if got != want:
                    sys.exit(f"MISMATCH {case['name']} {name}: {got} != {want}")
            n += 1
    print(f"{fixture} {scheme}: greedy and 3-beam new tokens of {n} cases equal quantized.json")


def main(argv):
    fixture = None
    weights_only = "--weights-only" in argv
    argv = [a for a in argv if a != "--weights-only"]
    if "--fixture" in argv:
        i = argv.index("--fixture")
        fixture = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 2:
        sys.exit(__doc__)
    converted, source = argv
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    state = check_weights(converted, source, keep=not weights_only)
    if weights_only:
        return 0
    model = load_in_transformers(converted, state)
    if fixture:
        check_fixture(model, converted, fixture)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
