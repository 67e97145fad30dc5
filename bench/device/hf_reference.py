"""The transformers peer of `npm run bench:model`: the same measurement on Hugging Face transformers + PyTorch, written
in the same report schema (bench/report-schema.ts, "blip2-webgpu/bench-report" version 1), so `npm run bench:report`
shows both side by side.

    python3 bench/device/hf_reference.py CHECKPOINT_DIR OUT_JSON [--device cuda|cpu] [--dtypes f16,f32]
        [--tokens 20] [--runs 2] [--image PATH] [--prompt TEXT] [--label NAME] [--threads N]

For each dtype: load the folder (Blip2Processor + Blip2ForConditionalGeneration.from_pretrained), caption the image
once from a cold start (processor, vision tower, Q-Former + projection, merge + prefill + first token = time to
first token, then greedy decoding with the KV cache for a fixed number of tokens, each token read back), then
`--runs` more times for the warm medians. Each stage ends with a device synchronisation; times are
time.perf_counter (wall clock; on CUDA after torch.cuda.synchronize). Peak device memory: torch.cuda's peak
allocation (CUDA) or the process's peak RSS (CPU). Also records how the installed BlipImageProcessor converts a
half-transparent RGBA image (composite on white, or alpha dropped).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import transformers
from transformers import Blip2ForConditionalGeneration, Blip2Processor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCHEMA, VERSION = "blip2-webgpu/bench-report", 1
DTYPES = {"f16": torch.float16, "f32": torch.float32, "bf16": torch.bfloat16}


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip() or None
    except Exception:
        return None


def project_info():
    try:
        pkg = json.load(open(os.path.join(ROOT, "package.json")))
    except Exception:
        pkg = {}
    status = git("status", "--porcelain", "--untracked-files=no")
    info = {"name": pkg.get("name", "blip2-webgpu"), "version": pkg.get("version", "0.0.0"),
            "commit": git("rev-parse", "HEAD"), "commit_date": git("log", "-1", "--format=%cI")}
    if status is not None:
        info["dirty"] = len(status) > 0
    return info


def host_info():
    host = {"os": f"{platform.system()} {platform.release()}", "arch": platform.machine(), "cpu_cores": os.cpu_count(), "source": "self"}
    try:
        cpuinfo = open("/proc/cpuinfo").read()
        for line in cpuinfo.splitlines():
            if line.startswith("model name"):
                host["cpu_model"] = line.split(":", 1)[1].strip()
                break
        mhz = [float(l.split(":", 1)[1]) for l in cpuinfo.splitlines() if l.startswith("cpu MHz")]
        if mhz:
            host["cpu_ghz"] = round(max(mhz) / 1000, 3)
        flags = next((l for l in cpuinfo.splitlines() if l.startswith("flags")), "")
        host["cpu_simd"] = "avx512" if " avx512f" in flags else "avx2" if " avx2" in flags else None
        if host["cpu_simd"] is None:
            del host["cpu_simd"]
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                host["memory_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        host["load_average"] = [round(v, 2) for v in os.getloadavg()]
    return host


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Clock:
    def __init__(self, device):
        self.device = device

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def now(self):
        self.sync()
        return time.perf_counter() * 1000


def dims(cfg):
    v, q, t = cfg.vision_config, cfg.qformer_config, cfg.text_config
    return {"image_size": v.image_size, "vision_hidden": v.hidden_size, "vision_layers": v.num_hidden_layers,
            "vision_heads": v.num_attention_heads, "qformer_hidden": q.hidden_size, "qformer_layers": q.num_hidden_layers,
            "num_query_tokens": cfg.num_query_tokens, "text_hidden": t.hidden_size, "text_layers": t.num_hidden_layers,
            "text_heads": t.num_attention_heads, "vocab_size": t.vocab_size}


@torch.inference_mode()
def caption_once(model, processor, image, prompt, tokens, device, dtype, clock):
    """One greedy caption stage by stage, as bench/model-run.ts does it: ms per stage, per decode step, and the ids."""
    cfg = model.config
    t0 = clock.now()
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    ids = inputs["input_ids"].to(device)
    pixels = inputs["pixel_values"].to(device, dtype)
    t1 = clock.now()
    image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state
    t2 = clock.now()
    # transformers keeps the Q-Former and the query tokens in fp32 (_keep_in_fp32_modules): cast at the seams as its forward does.
    qdt = model.query_tokens.dtype
    q = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    h = model.qformer(query_embeds=q, encoder_hidden_states=image_embeds.to(qdt)).last_hidden_state
    feats = model.language_projection(h.to(model.language_projection.weight.dtype)).to(dtype)
    t3 = clock.now()
    lm = model.language_model
    embeds = lm.get_input_embeddings()(ids)
    embeds[ids == cfg.image_token_index] = feats.reshape(-1, feats.shape[-1]).to(embeds.dtype)
    mask = torch.ones_like(ids)
    out = lm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, logits_to_keep=1)
    tok = out.logits[:, -1].argmax(-1, keepdim=True)
    token_ids = [int(tok.item())]
    t4 = clock.now()
    steps = max(0, min(tokens, cfg.text_config.max_position_embeddings - ids.shape[1]) - 1)
    past, decode = out.past_key_values, []
    for _ in range(steps):
        s = clock.now()
        mask = torch.cat([mask, torch.ones_like(tok)], dim=1)
        out = lm(input_ids=tok, attention_mask=mask, past_key_values=past, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        token_ids.append(int(tok.item()))  # a real decode loop reads each token back
        decode.append(clock.now() - s)
    return {"processor": t1 - t0, "vision": t2 - t1, "qformer": t3 - t2, "prefill": t4 - t3, "decode": decode,
            "token_ids": token_ids, "prompt_length": int(ids.shape[1])}


def bench(ckpt, dtype_name, args, clock):
    dtype = DTYPES[dtype_name]
    device = args.device
    from PIL import Image

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    processor = Blip2Processor.from_pretrained(ckpt)
    model = Blip2ForConditionalGeneration.from_pretrained(ckpt, dtype=dtype).to(device).eval()
    clock.sync()
    load_s = time.perf_counter() - t0
    weights = torch.cuda.memory_allocated() if device == "cuda" else sum(p.numel() * p.element_size() for p in model.parameters())
    image = Image.open(args.image)
    cold = caption_once(model, processor, image, args.prompt, args.tokens, device, dtype, clock)
    warm = [caption_once(model, processor, image, args.prompt, args.tokens, device, dtype, clock) for _ in range(args.runs)]
    med = lambda xs: statistics.median(xs) if xs else None
    decode_ms = sum(cold["decode"])
    ttft = cold["processor"] + cold["vision"] + cold["qformer"] + cold["prefill"]
    stages = {}
    if warm:
        stages = {"processor_ms": med([w["processor"] for w in warm]), "vision_ms": med([w["vision"] for w in warm]),
                  "qformer_ms": med([w["qformer"] for w in warm]), "prefill_ms": med([w["prefill"] for w in warm])}
        steps = [d for w in warm for d in w["decode"]]
        if steps:
            stages["decode_ms_per_token"] = med(steps)
    memory = {"weights_bytes": weights}
    if device == "cuda":
        memory["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    memory["peak_host_bytes"] = peak_rss_bytes()
    run = {
        "model": {"name": os.path.basename(os.path.normpath(ckpt)), "source": os.path.abspath(ckpt),
                  "dims": dims(model.config), "parameters": sum(p.numel() for p in model.parameters())},
        "variant": {"dtype": dtype_name, "quantize": None, "kv_cache": dtype_name},
        "load_s": load_s,
        "memory": memory,
        "stages": stages,
        "prefill_tokens": cold["prompt_length"],
        "decode_tokens": len(cold["decode"]),
        "runs": args.runs,
        "timing": "wall-clock",
        "e2e": {"image": os.path.basename(args.image), "prompt": args.prompt, "processor_ms": cold["processor"],
                "vision_ms": cold["vision"], "qformer_ms": cold["qformer"], "prefill_ms": cold["prefill"], "ttft_ms": ttft,
                "decode_tokens": len(cold["decode"]), "decode_ms": decode_ms,
                "decode_tokens_per_s": (1000 * len(cold["decode"]) / decode_ms) if decode_ms > 0 else 0,
                "total_ms": ttft + decode_ms, "token_ids": cold["token_ids"],
                "text": processor.tokenizer.decode(cold["token_ids"], skip_special_tokens=True).strip()},
    }
    if os.path.exists(os.path.join(ckpt, "RANDOM_WEIGHTS.md")):
        run["model"]["random_weights"] = True
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return run


def rgba_convention():
    import numpy as np
    from PIL import Image
    from transformers import BlipImageProcessor

    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 1] = 40
    rgba[..., 2] = 90
    rgba[..., 3] = 64  # mostly transparent red: white compositing and alpha dropping differ a lot
    img = Image.fromarray(rgba, "RGBA")
    proc = BlipImageProcessor(size={"height": 32, "width": 32}, do_normalize=False, do_rescale=False)
    px = proc(img, return_tensors="pt")["pixel_values"][0, :, 16, 16].tolist()
    white = [round(c * 64 / 255 + 255 * (1 - 64 / 255)) for c in (200, 40, 90)]
    return {"pixel": px, "composite_on_white": white, "alpha_dropped": [200, 40, 90],
            "verdict": "white" if abs(px[1] - white[1]) < 3 else ("drop" if abs(px[1] - 40) < 3 else "other")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtypes", default=None, help="comma-separated f16,f32,bf16 (default: f16,f32 on CUDA, f32 on CPU)")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--image", default=os.path.join(ROOT, "test/fixtures/tiny-blip2/chelsea.png"))
    ap.add_argument("--prompt", default="")
    ap.add_argument("--label", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = ap.parse_args()
    dtypes = (args.dtypes or ("f16,f32" if args.device == "cuda" else "f32")).split(",")
    for d in dtypes:
        if d not in DTYPES:
            ap.error(f"unknown dtype {d} (f16, f32, bf16)")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    clock = Clock(args.device)
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu"
    host = host_info()
    if args.device == "cpu":
        device_name = host.get("cpu_model", device_name)
    report = {
        "schema": SCHEMA, "version": VERSION,
        "label": args.label or f"transformers {args.device}",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "suite": "model",
        "project": project_info(),
        "engine": {"name": "transformers", "version": transformers.__version__, "peer": True,
                   "backend": f"torch {torch.__version__} ({args.device.upper() if args.device == 'cuda' else 'CPU'}, {torch.get_num_threads()} threads)"},
        "runtime": {"kind": "python", "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__},
        "host": host,
        "adapter": {"label": f"{device_name} ({args.device})", "vendor": "nvidia" if "NVIDIA" in device_name.upper() else "",
                    "architecture": "", "device": device_name, "description": device_name, "runtime": args.device,
                    "is_software": args.device == "cpu", "features": [], "limits": {}},
        "timing": "wall-clock",
        "model": [],
        "notes": [],
    }
    try:
        report["notes"].append(f"rgba_convert: {json.dumps(rgba_convention())}")
    except Exception as e:  # informative only
        report["notes"].append(f"rgba_convert: error {e!r}")

    def write():
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")

    for d in dtypes:
        try:
            run = bench(args.checkpoint, d, args, clock)
        except Exception as e:  # keep what was measured
            run = {"model": {"name": os.path.basename(os.path.normpath(args.checkpoint))}, "variant": {"dtype": d},
                   "load_s": None, "memory": {}, "stages": {}, "error": repr(e)}
        report["model"].append(run)
        print(json.dumps({k: run.get(k) for k in ("variant", "load_s", "stages", "error") if k in run}), flush=True)
        write()
    write()
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
