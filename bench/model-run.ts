/**
 * The model benchmark, the same code in Node (bench/model.ts) and in the browser page (demo/bench.ts): load a
 * BLIP-2 folder, caption one image from a cold start (the end-to-end figure: processor, vision tower, Q-Former,
 * prefill, time to first token, decode rate; pipeline compilation included), then time the same caption `runs`
 * more times (the warm stage medians). Each stage ends with a device sync, so its time includes completion.
 *
 * The caption is greedy and runs a fixed number of tokens (it does not stop at eos), so every run and machine
 * times the same work; its ids are the ones `Blip2.caption` generates up to that eos.
 *
 * Decoding runs as generate() runs it (`decode: 'device'`, the default: the captured step replayed with the token
 * chosen on the device and read back through a ring, `lookahead` steps ahead) or as version 0.1 ran it
 * (`decode: 'legacy'`: OPTForCausalLM.call recorded anew per step, its argmax read back before the next step).
 * Either way the run reports, beside the stage times, dispatches per token, host milliseconds per token
 * (JavaScript time recording and submitting a step, waits excluded) and read-back waits per token; with
 * `bandwidthGBs` also the decode's floor (the weight bytes one token reads over that bandwidth).
 *
 * Several configurations (f16, q8, q4 weights: `runModelBenches`) are all loaded first and measured interleaved:
 * every warm run captions with each in turn, so a shared machine whose load drifts moves them alike and their
 * ratios hold.
 */
import { decodeLoop } from '../src/generation/decode-loop.js';
import { generationConfigFromJson } from '../src/generation/config.js';
import { resolveGenerationConfig } from '../src/generation/generate.js';
import { CausalLMStepModel } from '../src/generation/step-model.js';
import type { DecodeMetrics } from '../src/generation/types.js';
import type { Gpu } from '../src/gpu/gpu.js';
import type { OPTKVCache } from '../src/model/opt-cache.js';
import { argmax } from '../src/kernels/argmax.js';
import type { LoadProgress } from '../src/model/loader.js';
import type { Blip2Config } from '../src/model/config.js';
import { Blip2 } from '../src/pipeline.js';
import type { QuantScheme } from '../src/quant/format.js';
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
  /** Quantized Linear weights (docs/quantization.md); a folder made by `blip2 convert` sets its own. */
  quantize?: QuantScheme;
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
  /** How decoding runs (see the header). Default 'device'. */
  decode?: 'device' | 'legacy';
  /** Device decoding: steps submitted ahead of the token read-back. Default: generate()'s (by adapter). */
  lookahead?: number;
  /** The device's memory bandwidth, GB/s: adds decode's floor to the report. */
  bandwidthGBs?: number;
  onProgress?: (message: string) => void;
}

/** What decoding did, summed over a caption's steps. */
interface DecodeCounts {
  steps: number;
  dispatches: number;
  /** Host ms of each step (recording and submitting; waits excluded). */
  hostSteps: number[];
  bookkeepingMs: number;
  readbackWaits: number;
  byKernel?: Record<string, number>;
}

interface CaptionTimes {
  processor: number;
  vision: number;
  qformer: number;
  prefill: number;
  decode: number[];
  tokenIds: number[];
  promptLength: number;
  counts: DecodeCounts;
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
async function captionOnce(blip2: Blip2, image: ImageInput, prompt: string, tokens: number, options: Pick<ModelBenchOptions, 'decode' | 'lookahead'>): Promise<CaptionTimes> {
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
  const merged = model.merge_image_features(feats, batch.inputIds, batch.attentionMask);
  try {
    const d = options.decode === 'legacy' ? await decodeLegacy(blip2, merged, promptLength, steps, t3) : await decodeDevice(blip2, merged, batch.inputIds, steps, t3, options.lookahead);
    return { processor: t1 - t0, vision: t2 - t1, qformer: t3 - t2, promptLength, ...d };
  } finally {
    for (const t of [feats, merged.inputs_embeds, vision.last_hidden_state, vision.pooler_output, pixel_values]) t.dispose();
  }
}

interface Merged {
  inputs_embeds: Tensor;
  attention_mask: number[][];
}

type Decoded = Pick<CaptionTimes, 'prefill' | 'decode' | 'tokenIds' | 'counts'>;

/** Version 0.1's loop: every step recorded anew (host-built mask and positions), its argmax read back before the next. */
async function decodeLegacy(blip2: Blip2, merged: Merged, promptLength: number, steps: number, t3: number): Promise<Decoded> {
  const model = blip2.model;
  const gpu = model.gpu;
  const cache = model.language_model.create_cache(gpu, 1, promptLength + steps + 1, 'f32');
  const mask = merged.attention_mask;
  let logits = tidy(() => model.language_model.call({ inputs_embeds: merged.inputs_embeds, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
  let next = tidy(() => argmax(logits.reshape([1, -1])));
  let token = (await next.read())[0]!;
  const t4 = now();
  const tokenIds = [token];
  const decode: number[] = [];
  const counts: DecodeCounts = { steps, dispatches: 0, hostSteps: [], bookkeepingMs: 0, readbackWaits: steps };
  try {
    for (let i = 0; i < steps; i++) {
      const s = now();
      const d0 = gpu.stats().dispatches;
      mask[0]!.push(1);
      const ids = Tensor.from(gpu, [token], [1, 1], 'i32');
      logits.dispose();
      next.dispose();
      logits = tidy(() => model.language_model.call({ input_ids: ids, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 }).logits);
      next = tidy(() => argmax(logits.reshape([1, -1])));
      const read = next.read(); // records the copy and submits, then waits
      counts.hostSteps.push(now() - s);
      counts.dispatches += gpu.stats().dispatches - d0;
      token = (await read)[0]!;
      ids.dispose();
      tokenIds.push(token);
      decode.push(now() - s);
    }
  } finally {
    for (const t of [logits, next]) t.dispose();
    cache.dispose();
  }
  return { prefill: t4 - t3, decode, tokenIds, counts };
}

/** Greedy search as generate() runs it: the prompt, then the captured step replayed with the choice on the device. */
async function decodeDevice(blip2: Blip2, merged: Merged, inputIds: number[][], steps: number, t3: number, lookahead: number | undefined): Promise<Decoded> {
  const lm = blip2.model.language_model;
  const arrivals: number[] = [];
  const tokenIds: number[] = [];
  const prompt = {
    batch: 1,
    positions: merged.attention_mask[0]!.length,
    run: (cache: OPTKVCache) =>
      tidy(() => {
        const out = lm.call({ inputs_embeds: merged.inputs_embeds, attention_mask: merged.attention_mask, past_key_values: cache, logits_to_keep: 1 });
        return { logits: out.logits.reshape([1, out.logits.dim(-1)]), attention_mask: merged.attention_mask };
      }),
  };
  const stepModel = new CausalLMStepModel(lm, prompt, steps + 1, 'f32');
  // No eos: exactly `steps` steps after the prompt's token, as the legacy loop runs.
  const config = resolveGenerationConfig(generationConfigFromJson(null, lm.config), { max_new_tokens: steps + 1, eos_token_id: null });
  const metrics = {} as DecodeMetrics;
  try {
    await decodeLoop({
      model: stepModel,
      prompts: inputIds,
      config,
      lookahead,
      metrics,
      onToken: (e) => {
        arrivals.push(now());
        tokenIds.push(e.token);
      },
    });
  } finally {
    stepModel.dispose();
  }
  return {
    prefill: arrivals[0]! - t3,
    decode: arrivals.slice(1).map((t, i) => t - arrivals[i]!),
    tokenIds,
    counts: {
      steps: metrics.steps ?? 0,
      dispatches: metrics.dispatches ?? 0,
      hostSteps: metrics.hostRecordStepMs ?? [],
      bookkeepingMs: metrics.hostBookkeepingMs ?? 0,
      readbackWaits: metrics.readbackWaits ?? 0,
      byKernel: metrics.dispatchesByKernel,
    },
  };
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

/** A configuration loaded for measuring, with what its load took. */
interface Loaded {
  options: ModelBenchOptions;
  blip2: Blip2;
  load_s: number;
  weights_bytes: number;
  cold?: CaptionTimes;
  warm: CaptionTimes[];
}

async function load(options: ModelBenchOptions): Promise<Loaded> {
  const { gpu } = options;
  const log = options.onProgress ?? (() => {});
  await gpu.sync();
  const before = gpu.stats().liveBytes;
  const tLoad = now();
  let lastPct = -1;
  const blip2 = await Blip2.fromPretrained(options.model, {
    gpu,
    dtype: options.dtype,
    quantize: options.quantize,
    // load_s times reading the checkpoint as it is served (HTTP ranges in browsers), the same on every run: the
    // browser's model store would turn it into a download on the first run and a storage read on later ones.
    cache: false,
    onProgress: (p: LoadProgress) => {
      const pct = Math.floor((100 * p.loadedBytes) / Math.max(1, p.totalBytes));
      if (pct !== lastPct && pct % 10 === 0) log(`loading ${pct}%`);
      lastPct = pct;
    },
  });
  const load_s = (now() - tLoad) / 1000;
  return { options, blip2, load_s, weights_bytes: gpu.stats().liveBytes - before, warm: [] };
}

function report(l: Loaded): ModelRun {
  const { options, blip2, warm } = l;
  const cold = l.cold!;
  const name = options.name ?? (options.model.replace(/\/+$/, '').split('/').pop() || options.model);
  const parameters = blip2.model.namedParameters().reduce((n, [, p]) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const quantize = blip2.model.quantization;
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
    variant: { dtype: options.dtype, quantize, kv_cache: 'f32' },
    load_s: l.load_s,
    memory: { weights_bytes: l.weights_bytes, peak_device_bytes: options.gpu.stats().peakLiveBytes },
    stages,
    prefill_tokens: cold.promptLength,
    decode_tokens: cold.decode.length,
    runs: options.runs,
    timing: 'wall-clock',
    e2e: endToEnd(cold, blip2, options),
    metrics: decodeMetrics(warm.length ? warm : [cold], blip2, options),
  };
}

/**
 * Loads every configuration (in order, keeping them all), captions once cold with each, then `runs` warm rounds
 * that caption with each in turn; one report entry per configuration.
 */
export async function runModelBenches(list: readonly ModelBenchOptions[], schedule: 'interleaved' | 'sequential' = 'interleaved'): Promise<ModelRun[]> {
  if (schedule === 'sequential') {
    // One configuration loaded at a time, for machines whose memory the models together would not fit (lavapipe's
    // device buffers are host memory). Minutes then pass between configurations, so a machine whose speed drifts
    // moves them apart (docs/quantization.md, fourth session): interleaved stays the default.
    const out: ModelRun[] = [];
    for (const options of list) out.push(...(await runModelBenches([options])));
    return out;
  }
  const loaded: Loaded[] = [];
  try {
    for (const options of list) loaded.push(await load(options));
    for (const l of loaded) {
      (l.options.onProgress ?? (() => {}))('cold caption (compiles pipelines)...');
      l.cold = await captionOnce(l.blip2, l.options.image, l.options.prompt ?? '', l.options.tokens, l.options);
    }
    const runs = Math.max(0, ...list.map((o) => o.runs));
    for (let r = 0; r < runs; r++) {
      for (const l of loaded) {
        if (r >= l.options.runs) continue;
        (l.options.onProgress ?? (() => {}))(`warm run ${r + 1}/${l.options.runs}...`);
        l.warm.push(await captionOnce(l.blip2, l.options.image, l.options.prompt ?? '', l.options.tokens, l.options));
      }
    }
    return loaded.map(report);
  } finally {
    for (const l of loaded) l.blip2.dispose();
  }
}

/** Loads the model, captions once cold and `runs` times warm; the run's report entry. */
export async function runModelBench(options: ModelBenchOptions): Promise<ModelRun> {
  return (await runModelBenches([options]))[0]!;
}

/**
 * How decoding ran, per token over the given captions: dispatches, host ms (recording and submitting, waits
 * excluded), read-back waits, and with a bandwidth the floor (the bytes of the weights one token reads: every
 * language-model weight, the tied lm_head once, one row of the position table).
 */
function decodeMetrics(runs: readonly CaptionTimes[], blip2: Blip2, options: ModelBenchOptions): Record<string, number | string> {
  const sum = (f: (c: DecodeCounts) => number) => runs.reduce((a, t) => a + f(t.counts), 0);
  const steps = Math.max(1, sum((c) => c.steps));
  const host = runs.flatMap((t) => t.counts.hostSteps);
  const out: Record<string, number | string> = {
    decode_mode: options.decode ?? 'device',
    dispatches_per_token: sum((c) => c.dispatches) / steps,
    // Wall-clock time of synchronous code: on a loaded machine it includes time the thread was descheduled, so the
    // median and the least disturbed step are reported beside the mean.
    host_ms_per_token: host.reduce((a, b) => a + b, 0) / Math.max(1, host.length),
    host_ms_per_token_median: host.length ? median(host) : 0,
    host_ms_per_token_min: host.length ? Math.min(...host) : 0,
    host_bookkeeping_ms_per_token: sum((c) => c.bookkeepingMs) / steps,
    readback_waits_per_token: sum((c) => c.readbackWaits) / steps,
  };
  if (options.lookahead !== undefined && options.decode !== 'legacy') out.decode_lookahead = options.lookahead;
  for (const [k, n] of Object.entries(runs[0]?.counts.byKernel ?? {})) out[`step_dispatches.${k}`] = n;
  const weightBytes = blip2.model.language_model
    .namedParameters()
    .filter(([name]) => !name.endsWith('embed_positions.weight'))
    .reduce((a, [, p]) => a + p.data.byteLength, 0);
  out.decode_weight_bytes = weightBytes;
  if (options.bandwidthGBs) out.bandwidth_floor_ms = (weightBytes / (options.bandwidthGBs * 1e9)) * 1000;
  return out;
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
  const x = run.metrics ?? {};
  if (typeof x.dispatches_per_token === 'number') {
    const n = (v: unknown, digits: number) => (typeof v === 'number' ? v.toFixed(digits) : '');
    rows.push(
      [`decode: ${String(x.decode_mode)}${x.decode_lookahead !== undefined ? `, lookahead ${String(x.decode_lookahead)}` : ''}`, '', ''],
      ['  dispatches / token', '', n(x.dispatches_per_token, 1)],
      ['  host ms / token (recording + submitting)', '', `${n(x.host_ms_per_token, 2)} (median ${n(x.host_ms_per_token_median, 2)}, min ${n(x.host_ms_per_token_min, 2)})`],
      ['  read-back waits / token', '', n(x.readback_waits_per_token, 2)],
    );
    if (typeof x.bandwidth_floor_ms === 'number' && s.decode_ms_per_token) {
      rows.push(['  bandwidth floor / token', '', `${fmt(x.bandwidth_floor_ms)} (x${(s.decode_ms_per_token / x.bandwidth_floor_ms).toFixed(2)})`]);
    }
  }
  const m = run.memory;
  const gib = (b: number | undefined) => (b === undefined ? '' : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(2)} MiB`);
  rows.push(['weights on the device', gib(m.weights_bytes), ''], ['peak device memory', gib(m.peak_device_bytes), '']);
  if (m.peak_host_bytes !== undefined) rows.push(['peak host memory (RSS)', gib(m.peak_host_bytes), '']);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r[0].padEnd(w[0]!)}  ${r[1].padStart(w[1]!)}  ${r[2].padStart(w[2]!)}`).join('\n');
}
