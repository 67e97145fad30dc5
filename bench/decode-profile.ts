/**
 * Where a decode step's time goes: loads a model folder, fills the KV cache with a prompt of `--prompt-len`
 * random embeddings, captures the decode step (src/model/opt-decode.ts) and replays it `--reps` times per round,
 * whole and each kind of dispatch (by label) alone. Rounds are interleaved; minima of wall and process CPU time
 * (on lavapipe the driver's threads: the figure to trust on a shared machine) are reported.
 *
 *   npx tsx bench/decode-profile.ts --model DIR [--quantize q8|q4] [--dtype f16|f32] [--rounds 5] [--reps 4]
 *
 * Replays are submitted back to back with one wait per round, as the device loop runs them, so what is timed is
 * the device's work (lavapipe: the driver's threads), not the host's.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { GpuProgram } from '../src/gpu/program.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import { OPTKVCache } from '../src/model/opt-cache.js';
import { OPTDecodeSession } from '../src/model/opt-decode.js';
import { isQuantScheme, type QuantScheme } from '../src/quant/format.js';
import { Tensor, tidy } from '../src/tensor.js';
import { formatTimings, minimum, timeInterleaved } from './interleaved.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    quantize: { type: 'string' },
    dtype: { type: 'string', default: 'f16' },
    rounds: { type: 'string', default: '5' },
    reps: { type: 'string', default: '4' },
    'prompt-len': { type: 'string', default: '40' },
  },
});
if (!args.model) throw new Error('--model DIR is required');
if (args.quantize !== undefined && !isQuantScheme(args.quantize)) throw new Error(`--quantize takes q8 or q4, got '${args.quantize}'`);
const dtype = args.dtype === 'f32' ? 'f32' : 'f16';
const rounds = Number(args.rounds);
const reps = Number(args.reps);
const promptLen = Number(args['prompt-len']);

const gpu = await Gpu.create();
const blip2 = await Blip2ForConditionalGeneration.fromPretrained(args.model, { gpu, dtype, quantize: args.quantize as QuantScheme | undefined });
const lm = blip2.language_model;
const c = lm.config;
const cache = OPTKVCache.create(gpu, { numLayers: c.num_hidden_layers, batch: 1, capacity: promptLen + 64, hidden: c.hidden_size, dtype: 'f32' });
tidy(() => {
  const embeds = Tensor.from(gpu, Float32Array.from({ length: promptLen * c.hidden_size }, (_, i) => Math.sin(i * 0.37) * 0.5), [1, promptLen, c.hidden_size]);
  lm.call({ inputs_embeds: embeds, attention_mask: [new Array<number>(promptLen).fill(1)], past_key_values: cache, logits_to_keep: 1 });
});
await gpu.sync();
const session = new OPTDecodeSession(lm, cache, [{ ids: [2], mask: new Array<number>(promptLen).fill(1), position: promptLen + 2, length: promptLen }], 1);
const program = session.capture(() => {});
const ops = program.ops;
const labels = [...new Set(ops.flatMap((o) => (o.kind === 'dispatch' ? [o.label] : [])))];
const only = (label: string | null) => {
  const kept = ops.filter((o) => o.kind === 'dispatch' && (label === null || o.label === label));
  return new GpuProgram(kept, kept.filter((o) => o.kind === 'dispatch').length, null, () => {});
};
const variants = new Map<string, GpuProgram>([['whole step', only(null)], ...labels.map((l) => [l, only(l)] as const)]);
const times = await timeInterleaved(
  gpu,
  Object.fromEntries([...variants].map(([name, p]) => [name, () => { for (let i = 0; i < reps; i++) gpu.replay(p); }])),
  rounds,
  reps,
);
const hist = program.histogram();
const scheme = blip2.quantization;
console.log(`${args.model} ${scheme ? `${scheme} + ${dtype}` : dtype} weights: ${c.num_hidden_layers} layers, ${program.dispatchCount} dispatches; ms per step (min of ${rounds} rounds of ${reps})`);
const cpuOf = (name: string) => minimum(times.get(name)!.cpu);
for (const [name, t] of times) {
  const n = name === 'whole step' ? program.dispatchCount : hist[name];
  const share = name === 'whole step' ? '' : `  ${((100 * cpuOf(name)) / cpuOf('whole step')).toFixed(0)}% of the step's cpu`;
  console.log(`${formatTimings(name, t)}  ${n} dispatches${share}`);
}
program.dispose();
session.state.dispose();
cache.dispose();
blip2.dispose();
gpu.destroy();
