/**
 * Fine-tuning step on the full-size architecture (random weights unless a real checkpoint is given): BLIP-2
 * stage 2 (Q-Former, query tokens and projection trained in f32; OPT frozen in f16 or f32, or its decoder layers'
 * Linear weights in q8/q4), on cached vision features, 32 query tokens + 16 text tokens per example.
 *
 *   npm run bench:train -- --checkpoint DIR [--json FILE] [--dtype f16|f32] [--quantize none,q8,q4]
 *                          [--batches 1,4] [--steps 2] [--checkpointing off|on|both] [--keep-vision]
 *
 * --quantize lists the frozen formats to measure, one model load each (default none: --dtype alone); a folder
 * written by `blip2 convert` holds its own scheme (give that one, or leave --quantize out).
 *
 * Per batch size: time per optimizer step (forward, backward, clip_grad_norm_, AdamW; device synced), the
 * forward pass alone on the same tokens (the step's floor is about two of those: the forward pass and the
 * frozen OPT's input gradients; the Q-Former's weight gradients are small), and the peak device memory during
 * the step (live bytes; idle pooled buffers come on top, at most --max-pooled-mib). The vision tower runs once
 * per image in training (its features are cached), so it is left out of the step and, unless --keep-vision, off
 * the device. docs/finetuning.md has the numbers measured on lavapipe (docs/measurements/train/).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { noGrad } from '../src/autograd/tape.js';
import { adapterLabel } from '../src/gpu/capabilities.js';
import { Gpu } from '../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import { isQuantScheme, type QuantScheme } from '../src/quant/format.js';
import { disposeTree, keep, Tensor } from '../src/tensor.js';
import { AdamW, clipGradNorm_ } from '../src/training/adamw.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    json: { type: 'string' },
    dtype: { type: 'string', default: 'f16' },
    quantize: { type: 'string', default: 'none' },
    batches: { type: 'string', default: '1,4' },
    steps: { type: 'string', default: '2' },
    'text-tokens': { type: 'string', default: '16' },
    checkpointing: { type: 'string', default: 'both' },
    'keep-vision': { type: 'boolean', default: false },
    // Idle buffers the pool keeps for reuse (device memory beyond the live bytes); GpuOptions.maxPooledBytes.
    'max-pooled-mib': { type: 'string', default: '512' },
  },
});
const USAGE = 'usage: npm run bench:train -- --checkpoint DIR [--json FILE] [--dtype f16|f32] [--quantize none,q8,q4] [--batches 1,4] [--steps 2] [--checkpointing off|on|both]';
if (!args.checkpoint || !(existsSync(join(args.checkpoint, 'model.safetensors.index.json')) || existsSync(join(args.checkpoint, 'model.safetensors')))) {
  console.error(USAGE);
  console.error('(DIR must hold a checkpoint: npm run make:random-checkpoint writes the full-size random one)');
  process.exit(2);
}
const dtype = args.dtype === 'f32' ? 'f32' : 'f16';
type Frozen = 'none' | QuantScheme;
const formats = args.quantize!.split(',') as Frozen[];
if (formats.some((f) => f !== 'none' && !isQuantScheme(f))) {
  console.error(`--quantize takes none, q8 and q4 (comma-separated), got '${args.quantize}'\n${USAGE}`);
  process.exit(2);
}
const batches = args.batches!.split(',').map(Number);
const steps = Math.max(1, Number(args.steps));
const textTokens = Number(args['text-tokens']);
const modes = args.checkpointing === 'both' ? [false, true] : [args.checkpointing === 'on'];
const now = () => performance.now();
const GiB = 2 ** 30;
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);

const maxPooledBytes = Number(args['max-pooled-mib']) * 2 ** 20;
const gpu = await Gpu.create({ maxPooledBytes });
console.error(`adapter: ${adapterLabel(gpu.caps.adapter)}`);

interface Row {
  batch: number;
  gradient_checkpointing: boolean;
  step_ms: number;
  forward_ms: number;
  step_over_forward: number;
  peak_device_bytes: number;
  /** Idle pooled bytes after the timed steps (device memory in use = live + pooled, pooled <= max_pooled_bytes). */
  pooled_bytes: number;
  loss: number;
}

interface Run {
  /** The frozen Linear weights of OPT's decoder layers: the dtype, or q8/q4 codes. */
  frozen: string;
  load_s: number;
  tokens_per_example: { query: number; text: number };
  trainable_parameters: number;
  vision_weight_bytes: number;
  device_bytes_before_training: number;
  rows: Row[];
}

/** Loads the model with `format` frozen weights and times every batch size and recomputation mode. */
async function measure(format: Frozen): Promise<Run> {
  const tLoad = now();
  const quantize = format === 'none' ? undefined : format;
  const model = await Blip2ForConditionalGeneration.fromPretrained(args.checkpoint!, { gpu, dtype, quantize, trainable: 'qformer' });
  const load_s = (now() - tLoad) / 1000;
  const cfg = model.config;
  const frozen = model.quantization ?? dtype;
  const paramBytes = (prefix: string) => model.namedParameters().filter(([k]) => k.startsWith(prefix)).reduce((n, [, p]) => n + p.data.byteLength, 0);
  const vision_weight_bytes = paramBytes('vision_model.');
  // post_layernorm stays: the pooled output is computed from the cached features.
  if (!args['keep-vision']) {
    model.vision_model.embeddings.dispose();
    model.vision_model.encoder.dispose();
  }
  await gpu.sync();
  const device_bytes_before_training = gpu.stats().liveBytes;
  const trainable = model.trainableParameters();
  const trainable_parameters = trainable.reduce((n, [, p]) => n + p.value.size, 0);
  const optimizer = new AdamW(trainable, { lr: 1e-5, weight_decay: 0.05 });

  const Q = cfg.num_query_tokens;
  const tokens = cfg.vision_config.image_size ** 2 / cfg.vision_config.patch_size ** 2 + 1;
  const inputs = (B: number) => {
    const feats = new Float32Array(B * tokens * cfg.vision_config.hidden_size);
    for (let i = 0; i < feats.length; i++) feats[i] = Math.sin(i * 0.37) * 0.5;
    const image_embeds = keep(Tensor.from(gpu, feats, [B, tokens, cfg.vision_config.hidden_size]));
    const text = (b: number) => [2, ...Array.from({ length: textTokens - 1 }, (_, i) => 100 + ((i * 7 + b * 13) % 5000))];
    const input_ids = Array.from({ length: B }, (_, b) => [...new Array<number>(Q).fill(cfg.image_token_index ?? 0), ...text(b)]);
    const labels = input_ids.map((row) => row.map((id, i) => (i < Q ? -100 : id)));
    return { image_embeds, input_ids, labels };
  };
  const step = async (x: ReturnType<typeof inputs>): Promise<number> => {
    const out = model.call({ image_embeds: x.image_embeds, input_ids: x.input_ids, labels: x.labels });
    const loss = keep(out.loss!.ref());
    disposeTree(out);
    loss.backward();
    const norm = clipGradNorm_(trainable, 1);
    optimizer.step();
    optimizer.zeroGrad();
    const l = (await loss.read())[0]!;
    loss.dispose();
    norm.dispose();
    return l;
  };

  const rows: Row[] = [];
  for (const B of batches) {
    for (const ckpt of modes) {
      model.language_model.gradient_checkpointing_enable(ckpt);
      const x = inputs(B);
      console.error(`${frozen}, batch ${B}, gradient checkpointing ${ckpt ? 'on' : 'off'}: warm-up step (compiles pipelines)...`);
      await step(x);
      await gpu.sync();
      gpu.pool.resetPeak();
      const times: number[] = [];
      let loss = 0;
      for (let s = 0; s < steps; s++) {
        const t = now();
        loss = await step(x);
        await gpu.sync();
        times.push(now() - t);
        console.error(`  step ${s + 1}: ${(times.at(-1)! / 1000).toFixed(1)} s, loss ${loss.toFixed(3)}`);
      }
      const peak = gpu.stats().peakLiveBytes;
      const pooled = gpu.stats().pooledBytes;
      const tf = now();
      const fwd = noGrad(() => model.call({ image_embeds: x.image_embeds, input_ids: x.input_ids }));
      await fwd.logits.read();
      const forward_ms = now() - tf;
      disposeTree(fwd);
      x.image_embeds.dispose();
      const step_ms = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
      rows.push({ batch: B, gradient_checkpointing: ckpt, step_ms, forward_ms, step_over_forward: step_ms / forward_ms, peak_device_bytes: peak, pooled_bytes: pooled, loss });
    }
  }
  optimizer.dispose();
  model.dispose();
  await gpu.sync();
  return { frozen, load_s, tokens_per_example: { query: Q, text: textTokens }, trainable_parameters, vision_weight_bytes, device_bytes_before_training, rows };
}

const runs: Run[] = [];
for (const format of formats) runs.push(await measure(format));
clearInterval(sampler);

const result = {
  adapter: { ...gpu.caps.adapter, label: adapterLabel(gpu.caps.adapter), f16: gpu.caps.f16, subgroups: gpu.caps.subgroups },
  dtype,
  checkpoint: args.checkpoint,
  vision_on_device: args['keep-vision'],
  max_pooled_bytes: maxPooledBytes,
  peak_host_bytes: peakRss,
  runs,
  note: gpu.caps.isSoftware ? 'software adapter: device buffers live in host memory' : undefined,
};
console.log(`\nBLIP-2 OPT-2.7B fine-tuning step (Q-Former trained, OPT frozen), ${result.adapter.label}`);
for (const r of runs) {
  console.log(`frozen ${r.frozen}: trainable parameters ${r.trainable_parameters.toLocaleString('en-US')}; device bytes before training ${(r.device_bytes_before_training / GiB).toFixed(2)} GiB (vision tower ${args['keep-vision'] ? 'on' : 'off'} the device: ${(r.vision_weight_bytes / GiB).toFixed(2)} GiB)`);
}
console.log(`${'frozen'.padEnd(7)} ${'batch'.padEnd(6)} ${'recompute'.padEnd(10)} ${'step'.padStart(10)} ${'forward'.padStart(10)} ${'step/fwd'.padStart(9)} ${'peak device'.padStart(12)} ${'+ pool'.padStart(10)}`);
for (const run of runs) {
  for (const r of run.rows) {
    const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;
    console.log(`${run.frozen.padEnd(7)} ${String(r.batch).padEnd(6)} ${(r.gradient_checkpointing ? 'on' : 'off').padEnd(10)} ${`${(r.step_ms / 1000).toFixed(2)} s`.padStart(10)} ${`${(r.forward_ms / 1000).toFixed(2)} s`.padStart(10)} ${r.step_over_forward.toFixed(2).padStart(9)} ${gib(r.peak_device_bytes).padStart(12)} ${gib(r.peak_device_bytes + r.pooled_bytes).padStart(10)}`);
  }
}
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2) + '\n');
gpu.destroy();
