"""How far 200 steps of `blip2 finetune` can take a fixture, in transformers + torch (docs/finetuning.md, *How far
the stage-2 selection gets on the tiny model*).

Trains on four images with captions, batch 4 (the whole set every step), rows encoded as `blip2 finetune` encodes
them (`<image>` x Q, BOS, caption, the config's text eos; the loss on BOS, the caption and eos), dropout off, AdamW
with clip_grad_norm_ and the project's schedule (linear warm-up, then constant or cosine to 0). What trains:

  qformer   BLIP-2 stage 2: query_tokens, qformer.*, language_projection.* (the default of `blip2 finetune`)
  all       everything but the vision tower (`--trainable all-but-vision`)
  projection  only language_projection.* (the Q-Former's output features fixed)
  prompt    no Q-Former at all: the language model's inputs at the image positions, one free vector per query
            position and image, start at the Q-Former's output. The bound on any Q-Former: whatever it computes
            reaches the frozen OPT only as these vectors.
  shared    as prompt, one set of vectors for all images (what a Q-Former that ignores the image can do)

Settings (key=value after the mode): lr, b1, b2, wd, clip (0: off), warm, sched (constant|cosine), steps,
lr_proj and lr_queries (the projection's and the query tokens' lr as a multiple of lr), nq (number of query
tokens: the fixture's first ones kept, more drawn like them), qformer_qk=K and qformer_out=K (the Q-Former's
query/key and output-dense weights times K: 0.333 undoes the fixtures' x3), start=random (prompt/shared: start
from normal noise of the Q-Former output's std; seed=N draws it), dtype=float64, proj_init=hf (a fresh projection
as transformers initialises one: normal(0, 0.02), zero bias), opt=lbfgs (prompt only: L-BFGS with at most `steps`
loss evaluations), threads. Setups are separated by ';'. One JSON line per setup: the loss at steps 1, 50, 100, 150,
and the last step (the loss of the batch the last step trained on, as `blip2 finetune` reports it) and its ratio.

Run in the reference chroot (shared/tools/ref/make-chroot.sh):
    chroot /tmp/refroot python3 /host/PROJECT/scripts/ref/finetune_bounds.py /host/PROJECT/test/fixtures/tiny-blip2 \
        'qformer lr=5e-3 wd=0 sched=constant; prompt lr=0.5 b2=0.99 wd=0 clip=0 sched=constant'
Images and captions default to the worked example's (tiny-blip2's images); give others with
    --data 'IMAGE=CAPTION|IMAGE=CAPTION|...' (paths relative to the fixture folder).
"""
import json
import math
import sys
import time

import torch
from PIL import Image
from transformers import AutoTokenizer, Blip2ForConditionalGeneration, Blip2Processor

DEFAULT_DATA = "chelsea.png=a photo of a cat|camera.png=a man with a camera|cell.png=cells under a microscope|horse.png=a drawing of a horse"


def batch(model, folder, data, nq):
    c = model.config
    tok = AutoTokenizer.from_pretrained(folder)
    pairs = [item.split("=", 1) for item in data.split("|")]
    rows = [[c.image_token_index] * nq + tok(caption).input_ids + [c.text_config.eos_token_id] for _, caption in pairs]
    L = max(map(len, rows))
    pad = c.text_config.pad_token_id
    ids = torch.tensor([r + [pad] * (L - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
    labels = torch.tensor([[-100 if t == c.image_token_index else t for t in r] + [-100] * (L - len(r)) for r in rows])
    proc = Blip2Processor.from_pretrained(folder)
    pixels = proc.image_processor([Image.open(f"{folder}/{image}").convert("RGB") for image, _ in pairs], return_tensors="pt")["pixel_values"]
    return ids, mask, labels, pixels


def run(folder, data, mode, kw):
    lr = float(kw.get("lr", 1e-4))
    steps = int(kw.get("steps", 200))
    warm = int(kw.get("warm", 0))
    sched = kw.get("sched", "cosine")
    clip = float(kw.get("clip", 1.0))
    torch.manual_seed(int(kw.get("seed", 0)))
    model = Blip2ForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    nq = int(kw.get("nq", model.config.num_query_tokens))
    if nq != model.config.num_query_tokens:
        q = model.query_tokens.data
        extra = torch.randn(1, max(0, nq - q.shape[1]), q.shape[2], generator=torch.Generator().manual_seed(1234)) * q.std()
        model.query_tokens = torch.nn.Parameter(torch.cat([q[:, :nq], extra], 1))
    if "qformer_qk" in kw or "qformer_out" in kw:
        # The fixtures sharpen the Q-Former's attention (query/key weights x3) and its output projections (x3).
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("qformer.") and (".attention.query." in name or ".attention.key." in name):
                    p.mul_(float(kw.get("qformer_qk", 1)))
                if name.startswith("qformer.") and ".output.dense." in name:
                    p.mul_(float(kw.get("qformer_out", 1)))
    if kw.get("proj_init") == "hf":
        torch.nn.init.normal_(model.language_projection.weight, std=0.02)
        torch.nn.init.zeros_(model.language_projection.bias)
    ids, mask, labels, pixels = batch(model, folder, data, nq)
    if kw.get("dtype") == "float64":
        model, pixels = model.double(), pixels.double()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        image_embeds = model.vision_model(pixel_values=pixels).last_hidden_state
    embed = model.get_input_embeddings()

    def qformer_prompts():
        out = model.qformer(
            query_embeds=model.query_tokens.expand(image_embeds.shape[0], -1, -1),
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:2], dtype=torch.long),
        ).last_hidden_state
        return model.language_projection(out)

    if mode in ("prompt", "shared"):
        with torch.no_grad():
            start = qformer_prompts()
            if kw.get("start") == "random":
                start = torch.randn_like(start) * start.std()
        free = torch.nn.Parameter(start.mean(0, keepdim=True) if mode == "shared" else start.clone())
        params = [free]
        prompts = lambda: free.expand(start.shape[0], -1, -1)  # noqa: E731
    else:
        for name, p in model.named_parameters():
            stage2 = name == "query_tokens" or name.startswith(("qformer.", "language_projection."))
            chosen = {"qformer": stage2, "projection": name.startswith("language_projection."), "all": not name.startswith("vision_model.")}
            p.requires_grad_(chosen[mode])
        params = [p for p in model.parameters() if p.requires_grad]
        prompts = qformer_prompts
    image = (ids == model.config.image_token_index).unsqueeze(-1)

    def loss_fn():
        inputs = embed(ids).masked_scatter(image, prompts())
        logits = model.language_model(inputs_embeds=inputs, attention_mask=mask).logits
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))

    losses, norms = [], []
    t0 = time.time()
    if kw.get("opt") == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=steps, max_eval=steps, history_size=50, line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            losses.append(loss.item())
            return loss

        opt.step(closure)
    else:
        groups = [{"params": params, "scale": 1.0}]
        if mode in ("qformer", "all", "projection"):
            # lr_proj=K, lr_queries=K: the projection's and the query tokens' learning rate K times the rest's.
            special = {"language_projection.weight": "lr_proj", "language_projection.bias": "lr_proj", "query_tokens": "lr_queries"}
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            groups = [{"params": [p for n, p in named if n not in special], "scale": 1.0}]
            for key in ("lr_proj", "lr_queries"):
                groups.append({"params": [p for n, p in named if special.get(n) == key], "scale": float(kw.get(key, 1))})
            groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, lr=lr, betas=(float(kw.get("b1", 0.9)), float(kw.get("b2", 0.999))), eps=1e-8, weight_decay=float(kw.get("wd", 0.05)))
        for step in range(steps):
            if step < warm:
                rate = lr * step / warm
            elif sched == "constant":
                rate = lr
            else:
                rate = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))))
            for g in opt.param_groups:
                g["lr"] = rate * g["scale"]
            opt.step()
            losses.append(loss.item())
    at = {f"loss{s}": round(losses[s - 1], 4) for s in (1, 50, 100, 150) if s <= len(losses)}
    return {
        "mode": mode, **kw, "trainable": sum(p.numel() for p in params), "query_tokens": nq, **at,
        "last": round(losses[-1], 4), "ratio": round(losses[-1] / losses[0], 4),
        "grad_norm_median": round(sorted(norms)[len(norms) // 2], 3) if norms else None, "seconds": round(time.time() - t0, 1),
    }


def main(argv):
    data = DEFAULT_DATA
    if "--data" in argv:
        i = argv.index("--data")
        data = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    folder, specs = argv[0], " ".join(argv[1:])
    for spec in specs.split(";"):
        words = spec.split()
        if not words:
            continue
        kw = dict(w.split("=", 1) for w in words[1:])
        torch.set_num_threads(int(kw.get("threads", 1)))
        print(json.dumps(run(folder, data, words[0], kw)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
