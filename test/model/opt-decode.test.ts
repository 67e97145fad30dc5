/**
 * The captured decode step (src/model/opt-decode.ts) against OPTForCausalLM.call with the cache, step by step, on
 * the tiny fixture: a left-padded batch of two, both attention kernels, f32 and f16 caches, a beam-style row
 * reorder in the middle, and the post-LN layer order (OPT-350m) by flipping the layers' flag.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { DecodeAttentionKernel } from '../../src/kernels/decode-attention.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import type { OPTForCausalLM } from '../../src/model/opt.js';
import { OPTDecodeSession } from '../../src/model/opt-decode.js';
import { Tensor, tidy, type DType } from '../../src/tensor.js';
import { maxAbsDiff, testGpu } from '../helpers.js';
import { TINY } from '../paths.js';

let gpu: Gpu;
let model: Blip2ForConditionalGeneration;
let lm: OPTForCausalLM;
beforeAll(async () => {
  gpu = await testGpu();
  model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f16' });
  lm = model.language_model;
});
afterAll(() => {
  model?.dispose();
  gpu?.destroy();
});

const PROMPTS = [
  [1, 1, 2, 50, 60],
  [2, 70, 80, 90, 100],
];
const MASKS = [
  [0, 0, 1, 1, 1],
  [1, 1, 1, 1, 1],
];
const STEPS = [
  [17, 300],
  [9, 9],
  [1000, 5],
  [44, 512],
  [3, 700],
];
const CAPACITY = 12;

async function compare(kernel: DecodeAttentionKernel, cacheDtype: DType, reorderAt: number | null, tol: number): Promise<void> {
  const before = gpu.stats().liveBytes;
  const ids = () => Tensor.from(gpu, Int32Array.from(PROMPTS.flat()), [2, 5], 'i32');
  const refCache0 = lm.create_cache(gpu, 2, CAPACITY, cacheDtype);
  const cache = lm.create_cache(gpu, 2, CAPACITY, cacheDtype);
  const mask = MASKS.map((r) => [...r]);
  for (const c of [refCache0, cache]) {
    tidy(() => {
      lm.call({ input_ids: ids(), attention_mask: mask, past_key_values: c, logits_to_keep: 1 });
    });
  }
  let refCache = refCache0;
  const rows = PROMPTS.map((p, r) => ({ ids: p, mask: MASKS[r]!, position: MASKS[r]!.reduce((a, b) => a + b, 0) + 2, length: 5 }));
  const session = new OPTDecodeSession(lm, cache, rows, 16, { attention: kernel });
  try {
    for (let s = 0; s < STEPS.length; s++) {
      if (s === reorderAt) {
        const parents = [1, 0];
        const moved = refCache.select(parents);
        refCache.dispose();
        refCache = moved;
        const [a, b] = mask;
        mask.splice(0, 2, b!, a!);
        session.reorder(parents);
      }
      const tokens = STEPS[s]!;
      for (const row of mask) row.push(1);
      const want = tidy(() => lm.call({ input_ids: Tensor.from(gpu, Int32Array.from(tokens), [2, 1], 'i32'), attention_mask: mask, past_key_values: refCache, logits_to_keep: 1 }).logits);
      const got = session.step(tokens);
      const diff = maxAbsDiff(await got.read(), await want.read());
      want.dispose();
      expect(diff, `${kernel} ${cacheDtype} step ${s}`).toBeLessThan(tol);
    }
  } finally {
    session.dispose();
    refCache.dispose();
    cache.dispose();
  }
  await gpu.sync();
  expect(gpu.stats().liveBytes, 'GPU memory left behind').toBe(before);
}

describe('the captured decode step equals OPTForCausalLM.call with the cache', () => {
  for (const kernel of ['fused', 'separate'] as const) {
    it(`${kernel} attention, f32 cache, rows reordered midway`, async () => {
      await compare(kernel, 'f32', 2, 2e-5);
    });
  }

  it('f16 cache (keys and values rounded as the cache stores them)', async () => {
    if (!gpu.caps.f16) return;
    // The fused LayerNorm sums in another order than the LayerNorm kernel: keys and values that differ in their
    // last f32 bits can round to neighbouring f16 values (2^-11 apart), which moves these logits by ~1e-3.
    for (const kernel of ['fused', 'separate'] as const) await compare(kernel, 'f16', null, 1e-2);
  });

  it('post-LN layers (do_layer_norm_before false)', async () => {
    const layers = [...lm.model.decoder.layers];
    const flip = (v: boolean) => layers.forEach((l) => ((l as { do_layer_norm_before: boolean }).do_layer_norm_before = v));
    flip(false);
    try {
      for (const kernel of ['fused', 'separate'] as const) await compare(kernel, 'f32', null, 5e-5);
    } finally {
      flip(true);
    }
  });

  it('a row takes a new sequence between steps without recapturing (continuous batching)', async () => {
    const prefill = (ids: number[], capacity: number) => {
      const c = lm.create_cache(gpu, 1, capacity, 'f32');
      tidy(() => {
        lm.call({ input_ids: Tensor.from(gpu, Int32Array.from(ids), [1, ids.length], 'i32'), attention_mask: [ids.map(() => 1)], past_key_values: c, logits_to_keep: 1 });
      });
      return c;
    };
    const row = (ids: number[]) => ({ ids, mask: ids.map(() => 1), position: ids.length + 2, length: ids.length });
    // A batch of two running sequences; after two steps row 1 is replaced by a new prompt.
    const a = [2, 40, 41];
    const b = [2, 50, 51, 52];
    const fresh = [2, 77, 78, 79, 80];
    const cache = lm.create_cache(gpu, 2, CAPACITY, 'f32');
    const pa = prefill(a, CAPACITY);
    const pb = prefill(b, CAPACITY);
    cache.copyRowFrom(pa, 0, 0, a.length);
    cache.copyRowFrom(pb, 0, 1, b.length);
    const session = new OPTDecodeSession(lm, cache, [row(a), row(b)], 8);
    session.step([5, 6]);
    session.step([7, 8]);
    const pf = prefill(fresh, CAPACITY);
    session.replaceRow(1, pf, 0, row(fresh));
    const both = await session.step([9, 10]).read();
    // Row 1 alone, from its own prompt: the same logits.
    const alone = new OPTDecodeSession(lm, pf, [row(fresh)], 8);
    const want = await alone.step([10]).read();
    const V = lm.config.vocab_size;
    expect(maxAbsDiff(both.subarray(V, 2 * V), want)).toBeLessThan(1e-5);
    for (const s of [session, alone]) s.dispose();
    for (const c of [cache, pa, pb, pf]) c.dispose();
  });

  it('replays one program per step: dispatches and host work do not grow with the steps', async () => {
    const cache = lm.create_cache(gpu, 1, CAPACITY, 'f32');
    tidy(() => {
      lm.call({ input_ids: Tensor.from(gpu, [2, 50, 60], [1, 3], 'i32'), attention_mask: [[1, 1, 1]], past_key_values: cache, logits_to_keep: 1 });
    });
    const session = new OPTDecodeSession(lm, cache, [{ ids: [2, 50, 60], mask: [1, 1, 1], position: 5, length: 3 }], 8);
    session.step([7]);
    await gpu.sync();
    const d0 = gpu.stats().dispatches;
    const b0 = gpu.stats().bindGroupMisses;
    session.step([8]);
    session.step([9]);
    await gpu.sync();
    const perStep = (gpu.stats().dispatches - d0) / 2;
    // Tiny OPT has 2 layers: 5 dispatches each at most (software adapters: fused attention, out_proj, fc1's LayerNorm
    // as a dispatch of its own, fc1, fc2; GPUs: LayerNorm-prologue q/k/v, attention, out_proj, fc1, fc2), plus
    // embeddings, lm_head, commit.
    expect(perStep).toBeLessThanOrEqual(2 * 5 + 5);
    expect(gpu.stats().bindGroupMisses - b0, 'no bind group is created per step').toBeLessThanOrEqual(2);
    session.dispose();
    cache.dispose();
  });
});
