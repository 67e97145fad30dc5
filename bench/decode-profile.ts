/**
 * Where a decode step's time goes: loads a model folder, fills the KV cache with a prompt of `--prompt-len`
 * random embeddings, captures the decode step (src/model/opt-decode.ts) and replays it `--reps` times per round,
 * whole and each kind of dispatch (by label) alone. Rounds are interleaved; minima and medians of wall and process
 * CPU time (on lavapipe the driver's threads) are reported.
 *
 *   npx tsx bench/decode-profile.ts --model DIR[:q8|q4][@fused|@separate] [--model ...] [--labels] [--dtype f16|f32] [--rounds 5] [--reps 4]
 *
 * With several `--model`s (a folder, optionally quantized while loading: `DIR:q4`), every model is loaded at once and
 * their whole steps are replayed in turn, round after round, so a machine whose speed drifts moves them alike: the
 * ratios to the first model (medians and minima) are the step-level comparison of formats. Loaded together they
 * must fit the device (the full-size f16, q8 and q4 models hold 13.8 GiB). `--labels` adds each model's dispatches
 * of every kind replayed alone, interleaved with the rest; `--regrouped` each step with its dispatches sorted by
 * pipeline (the same work with fewer switches between kernels). `@fused` / `@separate` forces the decode attention kernel
 * (src/kernels/decode-attention.ts) of that step; specs that differ only in it share one loaded model.
 *
 * Replays are submitted back to back with one wait per round, as the device loop runs them, so what is timed is
 * the device's work (lavapipe: the driver's threads), not the host's.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { GpuProgram, type ProgramOp } from '../src/gpu/program.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import type { DecodeAttentionKernel } from '../src/kernels/decode-attention.js';
import { OPTKVCache } from '../src/model/opt-cache.js';
import { OPTDecodeSession } from '../src/model/opt-decode.js';
import { isQuantScheme, type QuantScheme } from '../src/quant/format.js';
import { Tensor, tidy } from '../src/tensor.js';
import { formatTimings, median, minimum, timeInterleaved } from './interleaved.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', multiple: true },
    quantize: { type: 'string' },
    dtype: { type: 'string', default: 'f16' },
    rounds: { type: 'string', default: '5' },
    reps: { type: 'string', default: '4' },
    'prompt-len': { type: 'string', default: '40' },
    // With several models: also replay each model's dispatches of every label alone.
    labels: { type: 'boolean', default: false },
    // With several models: also replay each step with its dispatches sorted by pipeline (the same work, fewer
    // switches between kernels).
    regrouped: { type: 'boolean', default: false },
  },
});
if (!args.model?.length) throw new Error('--model DIR[:q8|q4] is required');
if (args.quantize !== undefined && !isQuantScheme(args.quantize)) throw new Error(`--quantize takes q8 or q4, got '${args.quantize}'`);
const ATTENTION_KERNELS: readonly DecodeAttentionKernel[] = ['fused', 'separate'];
const specs = args.model.map((spec) => {
  let m = spec;
  let attention: DecodeAttentionKernel | undefined;
  const amp = m.lastIndexOf('@');
  if (amp > 0) {
    const kernel = m.slice(amp + 1);
    if (!ATTENTION_KERNELS.includes(kernel as DecodeAttentionKernel)) throw new Error(`--model ${spec}: the attention kernel after '@' is fused or separate`);
    attention = kernel as DecodeAttentionKernel;
    m = m.slice(0, amp);
  }
  const at = m.lastIndexOf(':');
  const suffix = at > 0 ? m.slice(at + 1) : '';
  if (isQuantScheme(suffix)) return { dir: m.slice(0, at), quantize: suffix as QuantScheme, attention };
  return { dir: m, quantize: args.quantize as QuantScheme | undefined, attention };
});
const dtype = args.dtype === 'f32' ? 'f32' : 'f16';
const rounds = Number(args.rounds);
const reps = Number(args.reps);
const promptLen = Number(args['prompt-len']);

const gpu = await Gpu.create();

interface Captured {
  name: string;
  program: GpuProgram;
  dispose: () => void;
}

const loaded = new Map<string, Blip2ForConditionalGeneration>();

/** Loads one model (once per folder and scheme), fills a cache with the prompt and captures its decode step. */
async function capture(dir: string, quantize: QuantScheme | undefined, attention: DecodeAttentionKernel | undefined): Promise<Captured> {
  const key = `${dir}:${quantize ?? ''}`;
  let blip2 = loaded.get(key);
  if (!blip2) {
    blip2 = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype, quantize });
    loaded.set(key, blip2);
  }
  const lm = blip2.language_model;
  const c = lm.config;
  const cache = OPTKVCache.create(gpu, { numLayers: c.num_hidden_layers, batch: 1, capacity: promptLen + 64, hidden: c.hidden_size, dtype: 'f32' });
  tidy(() => {
    const embeds = Tensor.from(gpu, Float32Array.from({ length: promptLen * c.hidden_size }, (_, i) => Math.sin(i * 0.37) * 0.5), [1, promptLen, c.hidden_size]);
    lm.call({ inputs_embeds: embeds, attention_mask: [new Array<number>(promptLen).fill(1)], past_key_values: cache, logits_to_keep: 1 });
  });
  await gpu.sync();
  const session = new OPTDecodeSession(lm, cache, [{ ids: [2], mask: new Array<number>(promptLen).fill(1), position: promptLen + 2, length: promptLen }], 1, { attention });
  const program = session.capture(() => {});
  const scheme = blip2.quantization;
  const name = `${dir.split('/').filter(Boolean).pop()} ${scheme ? `${scheme} + ${dtype}` : dtype}${attention ? ` @${attention}` : ''}`;
  console.log(`${name} weights: ${c.num_hidden_layers} layers, ${program.dispatchCount} dispatches`);
  return {
    name,
    program,
    dispose: () => {
      program.dispose();
      session.state.dispose();
      cache.dispose();
    },
  };
}

const captured: Captured[] = [];
for (const s of specs) captured.push(await capture(s.dir, s.quantize, s.attention));

/** The program's dispatches with `label` (all of them for null). */
const only = (program: GpuProgram, label: string | null) => {
  const kept = program.ops.filter((o) => o.kind === 'dispatch' && (label === null || o.label === label));
  return new GpuProgram(kept, kept.length, null, () => {});
};
const labelsOf = (program: GpuProgram) => [...new Set(program.ops.flatMap((o) => (o.kind === 'dispatch' ? [o.label] : [])))];
/** The program's dispatches sorted by pipeline (in order of first use; stable within one). */
const regroup = (program: GpuProgram) => {
  const byPipeline = new Map<GPUComputePipeline, ProgramOp[]>();
  for (const o of program.ops) {
    if (o.kind !== 'dispatch') continue;
    const list = byPipeline.get(o.pipeline) ?? [];
    list.push(o);
    byPipeline.set(o.pipeline, list);
  }
  const kept = [...byPipeline.values()].flat();
  return new GpuProgram(kept, kept.length, null, () => {});
};
const variants = new Map<string, GpuProgram>();
if (captured.length === 1) {
  const { program } = captured[0]!;
  variants.set('whole step', only(program, null));
  for (const l of labelsOf(program)) variants.set(l, only(program, l));
} else {
  for (const c of captured) variants.set(c.name, only(c.program, null));
  if (args.regrouped) for (const c of captured) variants.set(`${c.name} | regrouped by pipeline`, regroup(c.program));
  if (args.labels) {
    for (const c of captured) {
      for (const l of labelsOf(c.program)) variants.set(`${c.name} | ${l}`, only(c.program, l));
    }
  }
}
const times = await timeInterleaved(
  gpu,
  Object.fromEntries([...variants].map(([name, p]) => [name, () => { for (let i = 0; i < reps; i++) gpu.replay(p); }])),
  rounds,
  reps,
);
console.log(`ms per step (${rounds} interleaved rounds of ${reps} replays)`);
if (captured.length === 1) {
  const { program } = captured[0]!;
  const hist = program.histogram();
  const cpuOf = (name: string) => minimum(times.get(name)!.cpu);
  for (const [name, t] of times) {
    const n = name === 'whole step' ? program.dispatchCount : hist[name];
    const share = name === 'whole step' ? '' : `  ${((100 * cpuOf(name)) / cpuOf('whole step')).toFixed(0)}% of the step's cpu`;
    console.log(`${formatTimings(name, t)}  ${n} dispatches${share}`);
  }
} else {
  const first = times.get(captured[0]!.name)!;
  for (const [name, t] of times) {
    if (name.includes(' | ')) {
      console.log(formatTimings(name, t, 48));
      continue;
    }
    const r = (f: (a: readonly number[]) => number, k: 'wall' | 'cpu') => (f(t[k]) / f(first[k])).toFixed(3);
    console.log(`${formatTimings(name, t, 28)}  ratio wall med ${r(median, 'wall')} min ${r(minimum, 'wall')}, cpu med ${r(median, 'cpu')} min ${r(minimum, 'cpu')}`);
  }
}
for (const v of variants.values()) v.dispose();
for (const c of captured) c.dispose();
for (const m of loaded.values()) m.dispose();
gpu.destroy();
