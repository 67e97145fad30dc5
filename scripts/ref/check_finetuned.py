"""Loads a folder written by `blip2 finetune` in transformers and captions images with it.

Run in the reference chroot (shared/tools/ref/make-chroot.sh):
    chroot /tmp/refroot python3 /host/PROJECT/scripts/ref/check_finetuned.py OUT_DIR BASE_DIR IMAGE...
Prints, as JSON: whether every key, shape and dtype equals BASE_DIR's checkpoint, how many tensors changed,
and for each image transformers' greedy caption (max_new_tokens 20): its text and its new token ids (the prompt's
image tokens and BOS left out, eos kept), which scripts/finetuned-parity.ts compares with ours.
"""
import json
import sys

import torch
import transformers
from PIL import Image
from safetensors import safe_open
from transformers import Blip2ForConditionalGeneration, Blip2Processor


def tensors(folder):
    out = {}
    with safe_open(folder + "/model.safetensors", "pt") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def main(out_dir, base_dir, images):
    torch.set_num_threads(2)
    a, b = tensors(out_dir), tensors(base_dir)
    same_layout = sorted(a) == sorted(b) and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
    changed = sorted(k for k in a if k in b and not torch.equal(a[k], b[k]))
    model = Blip2ForConditionalGeneration.from_pretrained(out_dir).eval()
    processor = Blip2Processor.from_pretrained(out_dir)
    captions, tokens = {}, {}
    for path in images:
        inputs = processor(images=Image.open(path), return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**inputs, max_new_tokens=20, do_sample=False, num_beams=1)[0]
        # Without text the processor gives pixel values only and generate starts from <image> x Q + BOS, which
        # transformers 4.46+ returns in front of the new tokens (older versions do not).
        cfg = model.config
        prompt = torch.tensor([cfg.image_token_index] * cfg.num_query_tokens + [cfg.text_config.bos_token_id])
        new = ids[len(prompt):] if len(ids) > len(prompt) and torch.equal(ids[: len(prompt)], prompt) else ids
        name = path.split("/")[-1]
        tokens[name] = [int(t) for t in new]
        captions[name] = processor.batch_decode([new], skip_special_tokens=True)[0].strip()
    print(json.dumps({
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "same_keys_shapes_dtypes": same_layout,
        "changed_tensors": len(changed),
        "unchanged_tensors": len(a) - len(changed),
        "captions": captions,
        "tokens": tokens,
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
