/** `--help` texts. */

const MODEL_FLAGS = `Model:
  -m, --model ID|DIR        hub repo id or local HF folder (default Salesforce/blip2-opt-2.7b,
                            or $BLIP2_MODEL); hub models are taken from the HF cache or downloaded
      --revision REV        hub branch, tag or commit (default main)
      --dtype f16|f32       weight precision on the GPU (default f16)
      --quantize q8|q4      8- or 4-bit weights for the vision encoder and OPT decoder layers
                            (docs/quantization.md); a folder made by \`blip2 convert\` needs none
      --progress            show progress bars even when stderr is not a terminal`;

const GENERATION_FLAGS = `Generation (the same ranges as the server's API fields):
      --max-new-tokens N    longest answer in tokens (default 30; prompt + N must fit the model's context)
      --num-beams N         beam search width, 1-16 (default 1: greedy or sampling)
      --temperature T       0-2; > 0 samples (default 0: greedy)
      --top-p P             nucleus sampling mass, (0, 1] (implies sampling)
      --top-k K             sample among the K likeliest tokens (implies sampling)
      --seed N              sampling seed (default 0; negative values too)
      --repetition-penalty R  (0, 10]; > 1 discourages repeats (default 1)
      --stop TEXT           end the answer before TEXT (repeatable)
  -n, --num-return-sequences N  answers per image, 1-64 (beam search or sampling)`;

const OUTPUT_FLAGS = `Output:
      --json                one JSON object per result and line: text, token_ids, finish_reason, ...
  -v, --verbose             timings on stderr; stack traces on errors
  -q, --quiet               nothing on stderr but errors
  -h, --help                this help`;

export const MAIN_HELP = `blip2 — BLIP-2 (OPT-2.7B) image captioning and visual question answering on WebGPU

Usage:
  blip2 caption IMAGE... [--prompt TEXT]   caption one or more images (one batch)
  blip2 ask IMAGE QUESTION                 answer a question about an image
  blip2 chat IMAGE                         multi-turn conversation about an image (reads stdin)
  blip2 serve [--port N] [--host H]        OpenAI-compatible HTTP server (/v1/chat/completions)
  blip2 download [MODEL]                   download a model into the Hugging Face cache
  blip2 convert SOURCE --quantize q4 --out DIR   write a compact quantized copy of a model folder
  blip2 finetune --model DIR --data FILE --out DIR   train the Q-Former on images with captions
  blip2 bench [ARGS...]                    run the model benchmark (bench/model.ts)

Options:
  -h, --help       help (also: blip2 COMMAND --help)
  -V, --version    version

IMAGE is a file path, an http(s) URL or a data: URI.
Environment: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, BLIP2_MODEL, BLIP2_API_KEY,
BLIP2_EXIT_WITH_PARENT (1: stop when the parent process exits; default on under npx/npm).
Exit status: 0 success, 1 failure (also: some image or question got no answer), 2 usage error
(including a value out of range), 130 interrupted.
`;

export const CAPTION_HELP = `Usage: blip2 caption IMAGE... [options]

Captions each image; several images run as one batch (see --batch-size). An image that cannot
be used gets an error line (--json: a record with "error") and the others still get their
captions; the exit status is then 1.

      --prompt TEXT         caption prefix the model continues, e.g. "a photo of"
      --batch-size N        images per batch (default 8)

${MODEL_FLAGS}

${GENERATION_FLAGS}

${OUTPUT_FLAGS}
`;

export const ASK_HELP = `Usage: blip2 ask IMAGE QUESTION [options]

Answers QUESTION about IMAGE with the prompt "Question: {QUESTION} Answer:".

${MODEL_FLAGS}

${GENERATION_FLAGS}

${OUTPUT_FLAGS}
`;

export const CHAT_HELP = `Usage: blip2 chat IMAGE [options]

Reads one question per line from stdin (a terminal or a pipe) and answers each, keeping the
conversation: "Question: {q1} Answer: {a1}. Question: {q2} Answer:". The oldest turns are
dropped when the conversation outgrows the model's context; a question too long to fit even
alone gets an error (--json: a record with "error") and the session goes on (exit status 1).
Commands: /reset forgets the conversation, /quit (or end of input, Ctrl-D) ends it.

${MODEL_FLAGS}

${GENERATION_FLAGS}

${OUTPUT_FLAGS}
`;

export const SERVE_HELP = `Usage: blip2 serve [options]

OpenAI-compatible server: POST /v1/chat/completions (plain or streamed), GET /v1/models, GET /health.
SIGINT/SIGTERM stop it gracefully: no new requests, in-flight ones finish (see --shutdown-timeout).
Under npx/npm exec (which do not forward signals) it also stops when npx exits.

      --host HOST           address to listen on (default 127.0.0.1)
      --port N              port (default 8000; 0 picks a free one)
      --api-key KEY         require "Authorization: Bearer KEY" (default $BLIP2_API_KEY; none if unset)
      --served-model-name NAME [NAME...]  model ids clients use; the first is in responses
                            (default: the repo id, or the model folder's name)
      --batching MODE       continuous (default): requests join and leave the running batch
                            between decode steps; static: requests waiting together run as
                            one batch to its end
      --max-batch N         most sequences decoding at once (default 8)
      --max-queue N         most waiting requests; more get 429 (default 64)
      --max-image-bytes N   largest image file (default 20971520)
      --max-image-pixels N  largest width x height (default 40000000)
      --max-body-bytes N    largest request body (default 33554432)
      --max-prompt-tokens N longest conversation text in tokens (default 512)
      --max-tokens-limit N  largest max_tokens a request may ask for (default 512)
      --default-max-tokens N  max_tokens when a request gives none (default 30)
      --request-timeout S   seconds a request may take, queue included (default 300)
      --shutdown-timeout S  seconds in-flight requests get on shutdown (default 30)
      --allow-private-image-urls  fetch image URLs on loopback/private/link-local addresses
                            (unsafe on a shared network; for tests and trusted setups)

${MODEL_FLAGS}

Output:
  -v, --verbose             log errors with stack traces
  -q, --quiet               no request log (only the "listening on" line and errors)
  -h, --help                this help
`;

export const DOWNLOAD_HELP = `Usage: blip2 download [MODEL] [options]

Downloads what BLIP-2 needs from MODEL (default Salesforce/blip2-opt-2.7b) into the Hugging Face
cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub): configs, tokenizer and processor
files, the safetensors index and shards. Files already there are kept; an interrupted download
resumes. Prints the snapshot folder.

      --revision REV        branch, tag or commit (default main)
      --refresh             ask the hub for the revision's latest commit even if it is cached
      --json                print {model, dir, commit, downloaded} as JSON
      --progress            show the progress bar even when stderr is not a terminal
  -q, --quiet               no progress bar
  -v, --verbose             stack traces on errors
  -h, --help                this help

Environment: HF_ENDPOINT (mirror), HF_TOKEN (gated/private repos), HF_HUB_OFFLINE=1 (cache only).
`;

export const CONVERT_HELP = `Usage: blip2 convert SOURCE --quantize q8|q4 --out DIR [options]

Writes a quantized copy of the BLIP-2 folder SOURCE (a local HF folder or a hub repo id): config.json
with a quantization_config naming the scheme, the tokenizer, processor and generation files, and
safetensors shards holding the codes and f16 scales of the vision encoder's and OPT decoder's Linear
weights (docs/quantization.md). The folder loads with no conversion: blip2 caption IMG --model DIR.

      --quantize q8|q4      the scheme (required)
      --out DIR             where to write (created; must not hold a model yet)
      --dtype f16|f32       storage of the other large weights (embeddings; default f16);
                            LayerNorms, biases and the Q-Former stay f32
      --max-shard-size N    largest shard in bytes (default 2000000000)
      --revision REV        hub revision of SOURCE (default main)
      --progress            show the progress bar even when stderr is not a terminal
      --json                print {dir, shards, bytes} as JSON
  -q, --quiet               no progress bar
  -v, --verbose             stack traces on errors
  -h, --help                this help
`;

export const BENCH_HELP = `Usage: blip2 bench [ARGS...]

Runs the model benchmark (bench/model.ts, from a source checkout) with ARGS passed through unchanged.
\`blip2 bench -- --help\` shows the benchmark's own options.
`;
