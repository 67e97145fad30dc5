"""HF transformers reference timings for BLIP-2 OPT-2.7B on the same checkpoint our engine loads.

Run on the GPU machine (bench/device/run.sh calls it):
    python3 bench/device/hf_reference.py CHECKPOINT_DIR OUT_JSON

Times, with CUDA events after warm-up, median of several runs: the vision model on one 224x224 image,
Q-Former + projection, OPT prefill (the same 41-token prompt layout as bench/model.ts), and greedy decode
per token with the KV cache, in float16 and float32. Also records how the installed transformers'
BlipImageProcessor converts a half-transparent RGBA image (composite on white, or alpha dropped).
"""
import json
import sys
import time

import torch
import transformers
from transformers import Blip2ForConditionalGeneration


def cuda_ms(fn, runs=5, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def bench(ckpt, dtype, decode_tokens=20):
    t0 = time.time()
    model = Blip2ForConditionalGeneration.from_pretrained(ckpt, dtype=dtype).to("cuda").eval()
    torch.cuda.synchronize()
    load_s = time.time() - t0
    cfg = model.config
    size = cfg.vision_config.image_size
    pixels = torch.sin(torch.arange(3 * size * size, dtype=torch.float32) * 0.001).reshape(1, 3, size, size).to("cuda", dtype)
    prompt = [100 + i for i in range(8)]
    ids = torch.tensor([[cfg.image_token_index] * cfg.num_query_tokens + [2] + prompt], device="cuda")
    out = {"dtype": str(dtype), "load_s": load_s, "prefill_tokens": ids.shape[1]}
    with torch.inference_mode():
        out["vision_ms"] = cuda_ms(lambda: model.vision_model(pixel_values=pixels))
        # transformers keeps the Q-Former and the query tokens in fp32 (_keep_in_fp32_modules); cast at the seams as its forward does.
        qdt = model.query_tokens.dtype
        image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state.to(qdt)
        q = model.query_tokens.expand(1, -1, -1)
        pdt = model.language_projection.weight.dtype

        def qformer():
            h = model.qformer(query_embeds=q, encoder_hidden_states=image_embeds).last_hidden_state
            return model.language_projection(h.to(pdt))

        out["qformer_ms"] = cuda_ms(qformer)
        lm_inputs = qformer().to(dtype)
        embeds = model.language_model.get_input_embeddings()(ids)
        embeds[ids == cfg.image_token_index] = lm_inputs.reshape(-1, lm_inputs.shape[-1])
        mask = torch.ones_like(ids)
        lm = model.language_model
        out["prefill_ms"] = cuda_ms(lambda: lm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, logits_to_keep=1))

        def decode():
            o = lm(inputs_embeds=embeds, attention_mask=mask, use_cache=True, logits_to_keep=1)
            past = o.past_key_values
            tok = o.logits[:, -1].argmax(-1, keepdim=True)
            m = mask
            torch.cuda.synchronize()
            s = time.perf_counter()
            for _ in range(decode_tokens):
                m = torch.cat([m, torch.ones_like(tok)], dim=1)
                o = lm(input_ids=tok, attention_mask=m, past_key_values=past, use_cache=True, logits_to_keep=1)
                past = o.past_key_values
                tok = o.logits[:, -1].argmax(-1, keepdim=True)
                tok.item()  # a real decode loop reads each token back
            return (time.perf_counter() - s) * 1000 / decode_tokens

        decode()
        per = sorted(decode() for _ in range(3))
        out["decode_ms_per_token"] = per[1]
    del model
    torch.cuda.empty_cache()
    return out


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


if __name__ == "__main__":
    ckpt, out_path = sys.argv[1], sys.argv[2]
    result = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "runs": [],
    }
    try:
        result["rgba_convert"] = rgba_convention()
    except Exception as e:  # informative only
        result["rgba_convert"] = {"error": repr(e)}
    for dtype in (torch.float16, torch.float32):
        try:
            result["runs"].append(bench(ckpt, dtype))
        except Exception as e:  # keep what was measured
            result["runs"].append({"dtype": str(dtype), "error": repr(e)})
        print(json.dumps(result["runs"][-1]), flush=True)
        with open(out_path, "w") as f:
            json.dump(result, f, indent=2)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
