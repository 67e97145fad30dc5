"""The exact answer for a fixture's training reference: transformers + torch in float64.

A fixture's training.json/.safetensors hold transformers' float32 run of one fine-tuning setting (the loss, the
step-0 gradients, the parameters after AdamW steps 1 and 3). Its recorded "other schedule" noise (1 thread
instead of 2) is not transformers' float32 error: measured against this float64 run, that error is 10^3 to 10^4
times larger (docs/finetuning.md). The parity test (test/training/parity.test.ts) measures our float32 run and
transformers' float32 run against this one.

Run in the reference chroot (shared/tools/ref/make-chroot.sh), for a fixture folder holding training.*:
    chroot /tmp/refroot python3 /host/PROJECT/scripts/ref/training64.py /host/PROJECT/test/fixtures/tiny-blip2
It writes training64.safetensors next to training.json: the same tensor names as training.safetensors
(grad.step0.*, param.after_step1.*, param.after_step3.*), computed in float64 and stored as float32, and in the
metadata the losses and gradient norms (JSON, float64).
"""
import json
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Blip2ForConditionalGeneration


def main(folder: str) -> None:
    torch.set_num_threads(2)
    model = Blip2ForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float64, attn_implementation="eager").eval()
    inputs = load_file(folder + "/training.safetensors")
    meta = json.load(open(folder + "/training.json"))
    o = meta["optimizer"]
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name in meta["trainable"])
        if p.requires_grad:
            trainable.append((name, p))
    opt = torch.optim.AdamW([p for _, p in trainable], lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
    out, losses, norms = {}, [], []
    for step in range(o["steps"] + 1):
        opt.zero_grad()
        r = model(
            pixel_values=inputs["inputs.pixel_values"].double(),
            input_ids=inputs["inputs.input_ids"],
            attention_mask=inputs["inputs.attention_mask"],
            labels=inputs["inputs.labels"],
        )
        losses.append(r.loss.item())
        if step == o["steps"]:
            break
        r.loss.backward()
        if step == 0:
            for name, p in trainable:
                out["grad.step0." + name] = p.grad.float().contiguous()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], o["clip_grad_norm"])))
        opt.step()
        if step + 1 in (1, 3):
            for name, p in trainable:
                out[f"param.after_step{step + 1}." + name] = p.detach().float().contiguous()
    save_file(
        out,
        folder + "/training64.safetensors",
        metadata={
            "producer": f"scripts/ref/training64.py: transformers {transformers.__version__}, torch {torch.__version__}, float64, eager attention",
            "losses": json.dumps(losses),
            "grad_norms_before_clipping": json.dumps(norms),
        },
    )
    print(json.dumps({"losses": losses, "grad_norms_before_clipping": norms}))


if __name__ == "__main__":
    main(sys.argv[1])
