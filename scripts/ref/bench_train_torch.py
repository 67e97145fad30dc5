"""The peer of `npm run bench:train`: the same fine-tuning step in transformers + PyTorch on this machine's CPU.

BLIP-2 stage 2 on cached vision features: the Q-Former, query tokens and language projection train (float32), the
language model is frozen (float32 here: PyTorch CPU has no fast f16), 32 query tokens + 16 text tokens per
example; the step is forward, backward, clip_grad_norm_(1.0) and AdamW. Run in the reference chroot, under the
machine-wide lock (about 18 GB of memory for the real-size checkpoint):
    flock /work/fullsize.lock chroot /tmp/refroot env OMP_NUM_THREADS=2 python3 /host/PROJECT/scripts/ref/bench_train_torch.py \\
        /host/ckpt/blip2-random --batches 1,4 --steps 2 --out /host/PROJECT/.../torch-train.json
"""
import argparse
import json
import resource
import time

import torch
import transformers
from transformers import Blip2ForConditionalGeneration


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--text-tokens", type=int, default=16)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    model = Blip2ForConditionalGeneration.from_pretrained(a.checkpoint, torch_dtype=torch.float32)
    load_s = time.time() - t0
    model.vision_model = None  # features are cached: the tower is not part of the step
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(("qformer.", "query_tokens", "language_projection.")))
        if p.requires_grad:
            trainable.append(p)
    opt = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.05)
    cfg = model.config
    Q = cfg.num_query_tokens
    tokens = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2 + 1
    rows = []
    for B in [int(b) for b in a.batches.split(",")]:
        image_embeds = torch.sin(torch.arange(B * tokens * cfg.vision_config.hidden_size, dtype=torch.float32) * 0.37).reshape(B, tokens, -1) * 0.5
        text = [[2] + [100 + ((i * 7 + b * 13) % 5000) for i in range(a.text_tokens - 1)] for b in range(B)]
        input_ids = torch.tensor([[cfg.image_token_index] * Q + t for t in text])
        labels = input_ids.clone()
        labels[:, :Q] = -100

        def step() -> float:
            query = model.query_tokens.expand(B, -1, -1)
            q = model.qformer(query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long))
            projected = model.language_projection(q.last_hidden_state)
            embeds = model.get_input_embeddings()(input_ids)
            mask = (input_ids == cfg.image_token_index).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, projected)
            out = model.language_model(inputs_embeds=embeds, attention_mask=torch.ones_like(input_ids), labels=labels)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            opt.zero_grad()
            return out.loss.item()

        step()  # warm-up
        times = []
        for _ in range(a.steps):
            s = time.time()
            step()
            times.append(time.time() - s)
        with torch.no_grad():
            s = time.time()
            query = model.query_tokens.expand(B, -1, -1)
            q = model.qformer(query_embeds=query, encoder_hidden_states=image_embeds)
            embeds = model.get_input_embeddings()(input_ids)
            mask = (input_ids == cfg.image_token_index).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, model.language_projection(q.last_hidden_state))
            model.language_model(inputs_embeds=embeds)
            forward_ms = (time.time() - s) * 1000
        times.sort()
        rows.append({"batch": B, "step_ms": times[len(times) // 2] * 1000, "forward_ms": forward_ms})
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "peer": f"transformers {transformers.__version__}, torch {torch.__version__}, CPU float32, {torch.get_num_threads()} threads",
        "load_s": load_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rows": rows,
    }
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
