/**
 * End-to-end model benchmark on the full-size architecture (random weights unless a real checkpoint is given).
 *
 *   npm run bench:model -- --checkpoint DIR [--json FILE] [--dtype f16|f32] [--tokens 20] [--runs 2]
 *
 * Creates the random checkpoint in DIR when it is absent. Prints a table and writes JSON with adapter, dtype,
 * load_s, peak_host_bytes, gpu_bytes, vision_ms, qformer_ms, prefill_ms and decode_ms_per_token, next to the
 * reference numbers of HF transformers float32 on PyTorch CPU on the same 2-core machine.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adapterLabel } from '../src/gpu/capabilities.js';
import { Gpu } from '../src/gpu/gpu.js';
import { argmax } from '../src/kernels/argmax.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import { Tensor, tidy } from '../src/tensor.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    json: { type: 'string' },
    dtype: { type: 'string', default: 'f16' },
    tokens: { type: 'string', default: '20' },
    runs: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string', default: '8' },
    // Reference: HF transformers float32, PyTorch CPU, this 2-core machine (issue #4).
    'hf-vision-s': { type: 'string', default: '4.1' },
    'hf-decode-s': { type: 'string', default: '1.33' },
  },
});
if (!args.checkpoint) {
  console.error('usage: npm run bench:model -- --checkpoint DIR [--json FILE] [--dtype f16|f32] [--tokens 20] [--runs 2]');
  process.exit(2);
}
const dtype = args.dtype === 'f32' ? 'f32' : 'f16';
const nTokens = Number(args.tokens);
const runs = Math.max(1, Number(args.runs));

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (!existsSync(join(args.checkpoint, 'model.safetensors.index.json')) && !existsSync(join(args.checkpoint, 'model.safetensors'))) {
  console.error(`no checkpoint in ${args.checkpoint}: writing a random one with the real blip2-opt-2.7b layout (about 15 GB)`);
  const t = now();
  await writeRandomCheckpoint(args.checkpoint, undefined, (s) => console.error(`  ${s}`));
  console.error(`  written in ${((now() - t) / 1000).toFixed(1)} s`);
}

const gpu = await Gpu.create();
console.error(`adapter: ${adapterLabel(gpu.caps.adapter)}`);
const tLoad = now();
let lastPct = -1;
const model = await Blip2ForConditionalGeneration.fromPretrained(args.checkpoint, {
  gpu,
  dtype,
  onProgress: (p) => {
    const pct = Math.floor((100 * p.loadedBytes) / p.totalBytes);
    if (pct !== lastPct && pct % 10 === 0) console.error(`  loading ${pct}%`);
    lastPct = pct;
  },
});
const load_s = (now() - tLoad) / 1000;
const peakRssAfterLoad = peakRss;
const weightBytes = gpu.stats().liveBytes;
const cfg = model.config;

const size = cfg.vision_config.image_size;
const pixels = new Float32Array(3 * size * size);
for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i * 0.001);
const pixel_values = Tensor.from(gpu, pixels, [1, 3, size, size]);
const promptIds = Array.from({ length: Number(args['prompt-tokens']) }, (_, i) => 100 + i);
const input_ids = [[...new Array<number>(cfg.num_query_tokens).fill(cfg.image_token_index ?? 0), 2, ...promptIds]];

interface Times {
  vision: number;
  qformer: number;
  prefill: number;
  decode: number[];
}

async function once(decodeSteps: number): Promise<Times> {
  const t0 = now();
  const vision = tidy(() => model.vision_model.call(pixel_values));
  await gpu.sync();
  const t1 = now();
  const feats = tidy(() => {
    const q = model.qformer.call(model.query_tokens.value, vision.last_hidden_state);
    return model.language_projection.call(q.last_hidden_state);
  });
  await gpu.sync();
  const t2 = now();
  const cache = model.language_model.create_cache(gpu, 1, input_ids[0]!.length + decodeSteps + 1, 'f32');
  const merged = model.merge_image_features(feats, input_ids);
  const mask = merged.attention_mask;
  let logits = tidy(() => model.language_model.call({ inputs_embeds: merged.inputs_embeds, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
  let next = tidy(() => argmax(logits.reshape([1, -1])));
  let token = (await next.read())[0]!;
  const t3 = now();
  const decode: number[] = [];
  for (let i = 0; i < decodeSteps; i++) {
    const s = now();
    mask[0]!.push(1);
    const ids = Tensor.from(gpu, [token], [1, 1], 'i32');
    logits.dispose();
    next.dispose();
    logits = tidy(() => model.language_model.call({ input_ids: ids, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
    next = tidy(() => argmax(logits.reshape([1, -1])));
    token = (await next.read())[0]!;
    ids.dispose();
    decode.push(now() - s);
  }
  for (const t of [logits, next, feats, merged.inputs_embeds, vision.last_hidden_state, vision.pooler_output]) t.dispose();
  cache.dispose();
  return { vision: t1 - t0, qformer: t2 - t1, prefill: t3 - t2, decode };
}

console.error('warm-up (compiles pipelines)...');
await once(2);
const all: Times[] = [];
for (let r = 0; r < runs; r++) {
  console.error(`run ${r + 1}/${runs}...`);
  all.push(await once(nTokens));
}
clearInterval(sampler);

const result = {
  adapter: { ...gpu.caps.adapter, label: adapterLabel(gpu.caps.adapter), f16: gpu.caps.f16, subgroups: gpu.caps.subgroups },
  dtype,
  checkpoint: args.checkpoint,
  load_s,
  peak_host_bytes: peakRss,
  peak_host_bytes_during_load: peakRssAfterLoad,
  gpu_bytes: weightBytes,
  gpu_peak_bytes: gpu.stats().peakLiveBytes,
  vision_ms: median(all.map((t) => t.vision)),
  qformer_ms: median(all.map((t) => t.qformer)),
  prefill_ms: median(all.map((t) => t.prefill)),
  prefill_tokens: input_ids[0]!.length,
  decode_ms_per_token: median(all.flatMap((t) => t.decode)),
  decode_tokens: nTokens,
  runs,
  reference: {
    source: 'HF transformers float32 on PyTorch CPU, same 2-core machine (issue #4)',
    vision_ms: Number(args['hf-vision-s']) * 1000,
    decode_ms_per_token: Number(args['hf-decode-s']) * 1000,
  },
  note: gpu.caps.isSoftware ? 'software adapter: GPU buffers live in host memory, so peak_host_bytes includes gpu_bytes' : undefined,
};
const ratio = (a: number, b: number) => (a / b).toFixed(2);
const rows: [string, string, string][] = [
  ['load', `${result.load_s.toFixed(1)} s`, ''],
  ['peak host memory (RSS)', `${(result.peak_host_bytes / 2 ** 30).toFixed(2)} GiB`, ''],
  ['GPU bytes (weights)', `${(result.gpu_bytes / 2 ** 30).toFixed(2)} GiB`, ''],
  ['vision model / image', `${result.vision_ms.toFixed(0)} ms`, `x${ratio(result.vision_ms, result.reference.vision_ms)} of HF CPU (${result.reference.vision_ms} ms)`],
  ['Q-Former + projection', `${result.qformer_ms.toFixed(0)} ms`, ''],
  [`OPT prefill (${result.prefill_tokens} tokens)`, `${result.prefill_ms.toFixed(0)} ms`, ''],
  ['OPT decode / token', `${result.decode_ms_per_token.toFixed(0)} ms`, `x${ratio(result.decode_ms_per_token, result.reference.decode_ms_per_token)} of HF CPU (${result.reference.decode_ms_per_token} ms)`],
];
console.log(`\nBLIP-2 OPT-2.7B, ${dtype} weights, ${result.adapter.label}`);
for (const [a, b, c] of rows) console.log(`${a.padEnd(28)} ${b.padStart(12)}  ${c}`);
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2) + '\n');
model.dispose();
pixel_values.dispose();
gpu.destroy();
