/**
 * Fine-tuning parity with transformers on every fixture folder that has a training reference: the loss, the
 * gradient of every trainable tensor at step 0, and the parameters after AdamW steps 1 and 3 (with
 * clip_grad_norm_), in float32, BLIP-2's stage-2 setting (Q-Former, query tokens and projection trainable).
 *
 * Bounds. A fixture records how much a second float32 schedule of transformers (1 thread instead of 2) moves
 * each group; that is not transformers' float32 error. Against transformers run in float64 on the same batch
 * (scripts/ref/training64.py) its float32 gradients are off by up to 6.0e-4 (tiny-blip2, max |g| 4.4) and
 * 0.116 (small-blip2, max |g| 47), 10^3 and 3x10^4 times the recorded noise; the fixtures' x3-scaled random
 * weights are ill-conditioned. No independent float32 implementation can land within a small multiple of that
 * noise, so the bounds here are:
 *  - where the float64 run is present (the public fixtures): our float32 run is no further from it than twice
 *    transformers' own float32 run is (measured: ours 1.8e-4 and 1.5e-2 on gradients, 3.4x and 7.8x closer than
 *    transformers'); parameters the same way, by the largest deviation and by the fraction of elements that
 *    moved at all (an AdamW step is ~lr sign(g), so elements whose gradient is rounding noise move by up to
 *    2 lr in any implementation: the key biases, whose exact gradient is 0, and a few near-zero gradients);
 *  - against transformers' float32 run alone (any fixture): the rules RULES.training* of
 *    test/support/tolerances.ts, each max(multiple x the recorded noise, a floor scaled by the quantity: the loss,
 *    the largest gradient, lr), the floors sized from the float64 study above with a margin of 4 or more; every
 *    message names the recorded noise and the ratio to it (BLIP2_FIDELITY_LOG logs them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeGraph, graphStats } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { readFloat32 } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { disposeTree, keep, Tensor } from '../../src/tensor.js';
import { AdamW, clipGradNorm_ } from '../../src/training/adamw.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, type Fixture } from '../support/fixtures.js';
import { compareToReference, expectChecks, RULES, type Check, type ToleranceRule } from '../support/tolerances.js';
import { hasTrainingReference, loadTrainingReference, type TrainingReference } from '../support/training-reference.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

type Group = 'grad.step0' | 'param.after_step1' | 'param.after_step3';

interface Run {
  losses: number[];
  norms: number[];
  /** Our values by group and key. */
  values: Record<Group, Map<string, Float32Array>>;
  liveBytesAfter: number;
  baseline: number;
}

async function train(dir: string, ref: TrainingReference): Promise<{ run: Run; names: string[] }> {
  const model = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32', trainable: 'qformer' });
  const params = model.trainableParameters();
  const o = ref.meta.optimizer;
  const opt = new AdamW(params, { lr: o.lr, betas: o.betas, eps: o.eps, weight_decay: o.weight_decay });
  await gpu.sync();
  const baseline = gpu.stats().liveBytes;
  const pixel_values = Tensor.from(gpu, ref.inputs.pixel_values, ref.inputs.pixelShape);
  const { input_ids, attention_mask, labels } = ref.inputs;
  const run: Run = { losses: [], norms: [], values: { 'grad.step0': new Map(), 'param.after_step1': new Map(), 'param.after_step3': new Map() }, liveBytesAfter: 0, baseline };
  const snapshot = async (group: Group, of: (p: (typeof params)[number][1]) => Tensor) => {
    for (const [name, p] of params) run.values[group].set(name, (await of(p).read()) as Float32Array);
  };
  for (let step = 0; step <= o.steps; step++) {
    const out = model.call({ pixel_values, input_ids, attention_mask, labels });
    const loss = keep(out.loss!.ref());
    disposeTree(out);
    run.losses.push((await loss.read())[0]!);
    if (step === o.steps) {
      loss.dispose();
      freeGraph(); // the last forward pass is not differentiated
      break;
    }
    loss.backward();
    loss.dispose();
    if (step === 0) await snapshot('grad.step0', (p) => p.grad!);
    const norm = clipGradNorm_(params, o.clip_grad_norm);
    run.norms.push((await norm.read())[0]!);
    norm.dispose();
    opt.step();
    opt.zeroGrad();
    if (step + 1 === 1) await snapshot('param.after_step1', (p) => p.value);
    if (step + 1 === 3) await snapshot('param.after_step3', (p) => p.value);
  }
  pixel_values.dispose();
  opt.dispose();
  await gpu.sync();
  run.liveBytesAfter = gpu.stats().liveBytes;
  const names = params.map(([n]) => n);
  model.dispose();
  return { run, names };
}

/** Per-element |a - b| over every tensor of a group, in one array. */
async function deviations(group: Group, mine: Map<string, Float32Array> | ((name: string) => Promise<Float32Array>), ref: (name: string) => Promise<Float32Array>, names: string[]): Promise<Float64Array> {
  const parts: number[] = [];
  for (const name of names) {
    const a = mine instanceof Map ? mine.get(name)! : await mine(name);
    const b = await ref(name);
    expect(a.length, `${group}.${name}`).toBe(b.length);
    for (let i = 0; i < a.length; i++) parts.push(Math.abs(a[i]! - b[i]!));
  }
  return Float64Array.from(parts);
}

const max = (d: Float64Array): number => d.reduce((m, x) => Math.max(m, x), 0);
const median = (d: Float64Array): number => Float64Array.from(d).sort()[Math.floor(d.length / 2)]!;
async function largest(read: (name: string) => Promise<Float32Array>, names: string[]): Promise<number> {
  let m = 0;
  for (const n of names) for (const v of await read(n)) m = Math.max(m, Math.abs(v));
  return m;
}
const fractionAbove = (d: Float64Array, t: number): number => d.filter((x) => x > t).length / d.length;

/** One group of tensors (every trainable tensor, concatenated in order) as one check against transformers float32. */
async function groupCheck(fx: Fixture, group: Group, mine: Map<string, Float32Array>, ref: (name: string) => Promise<Float32Array>, names: string[], rule: ToleranceRule): Promise<Check> {
  const cat = async (read: (name: string) => Promise<Float32Array>) => {
    const parts = await Promise.all(names.map(read));
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) out.set(p, (o += p.length) - p.length);
    return out;
  };
  return compareToReference(fx, group, await cat(async (n) => mine.get(n)!), await cat(ref), rule);
}

for (const fx of loadFixtures().filter((f) => hasTrainingReference(f.dir))) {
  const dir = fx.dir;
  describe(`fine-tuning parity with transformers: ${fx.name}`, () => {
    let ref: TrainingReference;
    let run: Run;
    let names: string[];
    beforeAll(async () => {
      ref = await loadTrainingReference(dir);
      ({ run, names } = await train(dir, ref));
    });
    afterAll(async () => ref?.close());

    const f32 = (group: Group) => (key: string) => readFloat32(ref.f32, `${group}.${key}`);
    const f64 = (group: Group) => (key: string) => readFloat32(ref.f64!.file, `${group}.${key}`);

    it('trains exactly the reference setting: Q-Former, query tokens and language projection', () => {
      expect([...names].sort()).toEqual([...ref.meta.trainable].sort());
    });

    it('loss at step 0, and every step-0 gradient, against transformers float32', async () => {
      expectChecks([
        compareToReference(fx, 'loss.step0', [run.losses[0]!], [ref.meta.losses[0]!], RULES.trainingLoss0),
        await groupCheck(fx, 'grad.step0', run.values['grad.step0'], f32('grad.step0'), names, RULES.trainingGrad),
      ]);
      // The norm clip_grad_norm_ saw at step 0 (transformers float32's is 2.4e-3 off its float64 norm on
      // small-blip2, ours 1.9e-4). Later norms are those of trajectories that drift apart (checked against float64).
      const n0 = ref.meta.grad_norms_before_clipping[0]!;
      expect(Math.abs(run.norms[0]! - n0) / n0, `norm ${run.norms[0]} vs ${n0}`).toBeLessThanOrEqual(1e-2);
    });

    it('parameters after AdamW steps 1 and 3, and the losses on the way, against transformers float32', async () => {
      const lr = ref.meta.optimizer.lr;
      const checks = [
        await groupCheck(fx, 'param.after_step1', run.values['param.after_step1'], f32('param.after_step1'), names, RULES.trainingStep1),
        await groupCheck(fx, 'param.after_step3', run.values['param.after_step3'], f32('param.after_step3'), names, RULES.trainingStep3),
        ...run.losses.slice(1).map((l, i) => compareToReference(fx, `loss.step${i + 1}`, [l], [ref.meta.losses[i + 1]!], RULES.trainingLoss)),
      ];
      expectChecks(checks);
      // Only the elements whose gradient is rounding noise may take the other sign's step: under 2% of them
      // after one step (measured under 1%), and the typical element stays within a tenth of a step after three.
      const d1 = await deviations('param.after_step1', run.values['param.after_step1'], f32('param.after_step1'), names);
      expect(fractionAbove(d1, 1e-6)).toBeLessThanOrEqual(0.02);
      const d3 = await deviations('param.after_step3', run.values['param.after_step3'], f32('param.after_step3'), names);
      expect(median(d3)).toBeLessThanOrEqual(lr / 10);
      // Training moved the loss down as it did in transformers.
      expect(run.losses[run.losses.length - 1]!).toBeLessThan(run.losses[0]!);
    });

    it('is no further from transformers float64 than transformers float32 is (x2): loss, gradients, parameters', async (ctx) => {
      if (!ref.f64) ctx.skip();
      const lr = ref.meta.optimizer.lr;
      const exact = ref.f64!.losses;
      const exactNorms = JSON.parse(ref.f64!.file.metadata.grad_norms_before_clipping ?? '[]') as number[];
      // Up to the first update's effect: the loss before and after step 1, the step-0 norm.
      const twice = (what: string, ours: number, theirs: number, want: number) =>
        expect(Math.abs(ours - want), `${what}: ours ${ours}, float64 ${want}, transformers float32 ${theirs}`).toBeLessThanOrEqual(Math.max(2 * Math.abs(theirs - want), 2e-6 * Math.abs(want)));
      twice('loss at step 0', run.losses[0]!, ref.meta.losses[0]!, exact[0]!);
      twice('loss after step 1', run.losses[1]!, ref.meta.losses[1]!, exact[1]!);
      twice('gradient norm at step 0', run.norms[0]!, ref.meta.grad_norms_before_clipping[0]!, exactNorms[0]!);
      for (const group of ['grad.step0', 'param.after_step1', 'param.after_step3'] as const) {
        const ours = await deviations(group, run.values[group], f64(group), names);
        const theirs = await deviations(group, f32(group), f64(group), names);
        const what = `${group}: ours vs float64 max ${max(ours)} median ${median(ours)}; transformers float32 vs float64 max ${max(theirs)} median ${median(theirs)}`;
        if (group === 'param.after_step3') {
          // After step 1 the small fixture is chaotic at float32 level: inputs moved by one ulp move the step-2
          // gradient norm by 8% and the loss after step 3 by 0.09 in our own runs. Allowed: one more step of
          // difference on the elements whose gradient is noise, and twice transformers' typical deviation.
          expect(max(ours), what).toBeLessThanOrEqual(2 * max(theirs) + 2 * lr);
          expect(median(ours), what).toBeLessThanOrEqual(2 * median(theirs) + lr / 100);
          continue;
        }
        expect(max(ours), what).toBeLessThanOrEqual(2 * max(theirs));
        if (group === 'param.after_step1') {
          // As many elements moved off the exact step as in transformers' float32 run (x2).
          expect(fractionAbove(ours, 1e-6), what).toBeLessThanOrEqual(2 * fractionAbove(theirs, 1e-6) + 1e-3);
          expect(median(ours), what).toBeLessThanOrEqual(2 * median(theirs) + 1e-7);
        }
      }
      // The gradient bound still sees a 1% error in the largest gradients.
      const g = await deviations('grad.step0', f32('grad.step0'), f64('grad.step0'), names);
      expect(2 * max(g)).toBeLessThan(0.01 * (await largest(f64('grad.step0'), names)));
    });

    it('frees every recorded graph and leaves no GPU memory behind', () => {
      expect(graphStats()).toEqual({ nodes: 0, savedTensors: 0 });
      expect(run.liveBytesAfter).toBe(run.baseline);
    });
  });
}
