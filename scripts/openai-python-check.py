#!/usr/bin/env python3
"""Checks `blip2 serve` with the official Python `openai` client: unusable images must raise BadRequestError,
unknown models NotFoundError, and a good request must answer. Not part of CI (it needs Python's `openai`, e.g.
from the reference chroot, /work/shared/tools/ref/make-chroot.sh); see docs/server.md.

    blip2 serve --model test/fixtures/tiny-blip2 --dtype f32 --port 8011 &
    python3 scripts/openai-python-check.py http://127.0.0.1:8011/v1 [IMAGE]

Prints one line per check and exits 1 if any check fails.
"""
import base64
import struct
import sys
import zlib

import openai


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk that claim a size, with no pixel data behind them."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def data_url(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def image_message(url: str, text: str = "what is it?") -> list:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]}]


def main() -> int:
    base_url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8011/v1"
    image_path = sys.argv[2] if len(sys.argv) > 2 else "test/fixtures/tiny-blip2/chelsea.png"
    image = open(image_path, "rb").read()
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    print(f"openai {openai.__version__}, server {base_url}, model {model}")
    failures = 0

    good = client.chat.completions.create(model=model, messages=image_message(data_url(image)), max_tokens=5)
    print(f"ok    answer {good.choices[0].message.content!r}, usage {good.usage.prompt_tokens}+{good.usage.completion_tokens}, model {good.model}")

    cases = [
        ("truncated PNG", lambda: client.chat.completions.create(model=model, messages=image_message(data_url(image[: len(image) // 2]))), openai.BadRequestError),
        ("not an image", lambda: client.chat.completions.create(model=model, messages=image_message(data_url(b"plain text"))), openai.BadRequestError),
        ("too many pixels", lambda: client.chat.completions.create(model=model, messages=image_message(data_url(png_header(20000, 20000)))), openai.BadRequestError),
        ("bad base64", lambda: client.chat.completions.create(model=model, messages=image_message("data:image/png;base64,@@@")), openai.BadRequestError),
        (
            "truncated PNG, streamed",
            lambda: list(client.chat.completions.create(model=model, messages=image_message(data_url(image[:200])), stream=True)),
            openai.BadRequestError,
        ),
        ("unknown model", lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]), openai.NotFoundError),
        ("unknown model, retrieve", lambda: client.models.retrieve("gpt-4o"), openai.NotFoundError),
    ]
    for name, call, expected in cases:
        try:
            call()
            print(f"FAIL  {name}: no error raised (expected {expected.__name__})")
            failures += 1
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            detail = f"{e.status_code} {body.get('type')} {body.get('code')} param={body.get('param')}"
            if isinstance(e, expected):
                print(f"ok    {name}: {type(e).__name__} ({detail})")
            else:
                print(f"FAIL  {name}: {type(e).__name__} ({detail}), expected {expected.__name__}")
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
