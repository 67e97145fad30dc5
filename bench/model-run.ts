/**
 * The model benchmark, the same code in Node (bench/model.ts) and in the browser page (demo/bench.ts): load a
 * BLIP-2 folder, caption one image from a cold start (the end-to-end figure: processor, vision tower, Q-Former,
 * prefill, time to first token, decode rate; pipeline compilation included), then time the same caption `runs`
 * more times (the warm stage medians). Each stage ends with a device sync, so its time includes completion.
 *
 * The caption is greedy and runs a fixed number of tokens (it does not stop at eos), so every run and machine
 * times the same work; its ids are the ones `Blip2.caption` generates up to that eos.
 */
import type { Gpu } from '../src/gpu/gpu.js';
import { argmax } from '../src/kernels/argmax.js';
import type { LoadProgress } from '../src/model/loader.js';
import type { Blip2Config } from '../src/model/config.js';
import { Blip2 } from '../src/pipeline.js';
import type { ImageInput } from '../src/processing/image-input.js';
import { Tensor, tidy } from '../src/tensor.js';
import type { EndToEnd, ModelDims, ModelRun } from './report-schema.js';

export interface ModelBenchOptions {
  gpu: Gpu;
  /** Model folder: a path (Node) or URL. */
  model: string;
  /** Name recorded in the report (default: the folder's last component). */
  name?: string;
  dtype: 'f16' | 'f32';
  /** The image to caption: path, URL or bytes. */
  image: ImageInput;
  /** Recorded as the image's name. */
  imageName?: string;
  /** '' = caption (the default). */
  prompt?: string;
  /** Tokens per caption (first token included); capped by the model's positions. */
  tokens: number;
  /** Warm runs after the cold one. */
  runs: number;
  randomWeights?: boolean;
  onProgress?: (message: string) => void;
}

interface CaptionTimes {
  processor: number;
  vision: number;
  qformer: number;
  prefill: number;
  decode: number[];
  tokenIds: number[];
  promptLength: number;
}

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function modelDims(c: Blip2Config): ModelDims {
  return {
    image_size: c.vision_config.image_size,
    vision_hidden: c.vision_config.hidden_size,
    vision_layers: c.vision_config.num_hidden_layers,
    vision_heads: c.vision_config.num_attention_heads,
    qformer_hidden: c.qformer_config.hidden_size,
    qformer_layers: c.qformer_config.num_hidden_layers,
    num_query_tokens: c.num_query_tokens,
    text_hidden: c.text_config.hidden_size,
    text_layers: c.text_config.num_hidden_layers,
    text_heads: c.text_config.num_attention_heads,
    vocab_size: c.text_config.vocab_size,
  };
}

/** One greedy caption, stage by stage: processor, vision, Q-Former + projection, prefill + first token, decode. */
async function captionOnce(blip2: Blip2, image: ImageInput, prompt: string, tokens: number): Promise<CaptionTimes> {
  const model = blip2.model;
  const gpu = model.gpu;
  const t0 = now();
  const batch = await blip2.processor.process({ images: [image], text: [prompt] });
  const t1 = now();
  const pixel_values = Tensor.from(gpu, batch.pixelValues, batch.pixelShape);
  const vision = tidy(() => model.vision_model.call(pixel_values));
  await gpu.sync();
  const t2 = now();
  const feats = tidy(() => {
    const q = model.qformer.call(model.query_tokens.value, vision.last_hidden_state);
    return model.language_projection.call(q.last_hidden_state);
  });
  await gpu.sync();
  const t3 = now();
  const promptLength = batch.inputIds[0]!.length;
  const steps = Math.max(0, Math.min(tokens, model.config.text_config.max_position_embeddings - promptLength) - 1);
  const cache = model.language_model.create_cache(gpu, 1, promptLength + steps + 1, 'f32');
  const merged = model.merge_image_features(feats, batch.inputIds, batch.attentionMask);
  const mask = merged.attention_mask;
  let logits = tidy(() => model.language_model.call({ inputs_embeds: merged.inputs_embeds, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
  let next = tidy(() => argmax(logits.reshape([1, -1])));
  let token = (await next.read())[0]!;
  const t4 = now();
  const tokenIds = [token];
  const decode: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const s = now();
      mask[0]!.push(1);
      const ids = Tensor.from(gpu, [token], [1, 1], 'i32');
      logits.dispose();
      next.dispose();
      logits = tidy(() => model.language_model.call({ input_ids: ids, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
      next = tidy(() => argmax(logits.reshape([1, -1])));
      token = (await next.read())[0]!;
      ids.dispose();
      tokenIds.push(token);
      decode.push(now() - s);
    }
  } finally {
    for (const t of [logits, next, feats, merged.inputs_embeds, vision.last_hidden_state, vision.pooler_output, pixel_values]) t.dispose();
    cache.dispose();
  }
  return { processor: t1 - t0, vision: t2 - t1, qformer: t3 - t2, prefill: t4 - t3, decode, tokenIds, promptLength };
}

function endToEnd(t: CaptionTimes, blip2: Blip2, options: ModelBenchOptions): EndToEnd {
  const decodeMs = t.decode.reduce((a, b) => a + b, 0);
  const ttft = t.processor + t.vision + t.qformer + t.prefill;
  return {
    ...(options.imageName ? { image: options.imageName } : {}),
    prompt: options.prompt ?? '',
    processor_ms: t.processor,
    vision_ms: t.vision,
    qformer_ms: t.qformer,
    prefill_ms: t.prefill,
    ttft_ms: ttft,
    decode_tokens: t.decode.length,
    decode_ms: decodeMs,
    decode_tokens_per_s: t.decode.length > 0 && decodeMs > 0 ? (1000 * t.decode.length) / decodeMs : 0,
    total_ms: ttft + decodeMs,
    token_ids: t.tokenIds,
    text: blip2.processor.decode(t.tokenIds, { skipSpecialTokens: true }).trim(),
  };
}

/** Loads the model, captions once cold and `runs` times warm; the run's report entry. */
export async function runModelBench(options: ModelBenchOptions): Promise<ModelRun> {
  const { gpu } = options;
  const log = options.onProgress ?? (() => {});
  const name = options.name ?? (options.model.replace(/\/+$/, '').split('/').pop() || options.model);
  const tLoad = now();
  let lastPct = -1;
  const blip2 = await Blip2.fromPretrained(options.model, {
    gpu,
    dtype: options.dtype,
    onProgress: (p: LoadProgress) => {
      const pct = Math.floor((100 * p.loadedBytes) / Math.max(1, p.totalBytes));
      if (pct !== lastPct && pct % 10 === 0) log(`loading ${pct}%`);
      lastPct = pct;
    },
  });
  const load_s = (now() - tLoad) / 1000;
  try {
    const weights_bytes = gpu.stats().liveBytes;
    const parameters = blip2.model.namedParameters().reduce((n, [, p]) => n + p.shape.reduce((a, b) => a * b, 1), 0);
    const prompt = options.prompt ?? '';
    log('cold caption (compiles pipelines)...');
    const cold = await captionOnce(blip2, options.image, prompt, options.tokens);
    const warm: CaptionTimes[] = [];
    for (let r = 0; r < options.runs; r++) {
      log(`warm run ${r + 1}/${options.runs}...`);
      warm.push(await captionOnce(blip2, options.image, prompt, options.tokens));
    }
    const decodeSteps = warm.flatMap((t) => t.decode);
    const stages: ModelRun['stages'] = {};
    if (warm.length) {
      stages.processor_ms = median(warm.map((t) => t.processor));
      stages.vision_ms = median(warm.map((t) => t.vision));
      stages.qformer_ms = median(warm.map((t) => t.qformer));
      stages.prefill_ms = median(warm.map((t) => t.prefill));
      if (decodeSteps.length) stages.decode_ms_per_token = median(decodeSteps);
    }
    return {
      model: {
        name,
        source: options.model,
        ...(options.randomWeights !== undefined ? { random_weights: options.randomWeights } : {}),
        dims: modelDims(blip2.model.config),
        parameters,
      },
      variant: { dtype: options.dtype, quantize: null, kv_cache: 'f32' },
      load_s,
      memory: { weights_bytes, peak_device_bytes: gpu.stats().peakLiveBytes },
      stages,
      prefill_tokens: cold.promptLength,
      decode_tokens: cold.decode.length,
      runs: options.runs,
      timing: 'wall-clock',
      e2e: endToEnd(cold, blip2, options),
    };
  } finally {
    blip2.dispose();
  }
}

const fmt = (ms: number | undefined) => (ms === undefined ? '' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`);

/** The run as text rows: cold end to end beside the warm medians. */
export function formatModelRun(run: ModelRun): string {
  const e = run.e2e;
  const s = run.stages;
  const rows: [string, string, string][] = [
    ['stage', 'cold (first caption)', `warm (median of ${run.runs ?? 0})`],
    ['load', run.load_s === null ? '' : `${run.load_s.toFixed(1)} s`, ''],
    ['processor', fmt(e?.processor_ms), fmt(s.processor_ms)],
    ['vision tower', fmt(e?.vision_ms), fmt(s.vision_ms)],
    ['Q-Former + projection', fmt(e?.qformer_ms), fmt(s.qformer_ms)],
    [`prefill (${run.prefill_tokens ?? '?'} tokens) + 1st token`, fmt(e?.prefill_ms), fmt(s.prefill_ms)],
    ['time to first token', fmt(e?.ttft_ms), ''],
    ['decode / token', e && e.decode_tokens ? fmt(e.decode_ms / e.decode_tokens) : '', fmt(s.decode_ms_per_token)],
    ['decode tokens/s', e ? e.decode_tokens_per_s.toFixed(2) : '', s.decode_ms_per_token ? (1000 / s.decode_ms_per_token).toFixed(2) : ''],
  ];
  const m = run.memory;
  const gib = (b: number | undefined) => (b === undefined ? '' : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(2)} MiB`);
  rows.push(['weights on the device', gib(m.weights_bytes), ''], ['peak device memory', gib(m.peak_device_bytes), '']);
  if (m.peak_host_bytes !== undefined) rows.push(['peak host memory (RSS)', gib(m.peak_host_bytes), '']);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r[0].padEnd(w[0]!)}  ${r[1].padStart(w[1]!)}  ${r[2].padStart(w[2]!)}`).join('\n');
}
