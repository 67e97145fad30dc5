/**
 * decode_attention against its CPU reference (src/cpu/decode-attention.ts) at awkward shapes: rows at different
 * cache lengths (read from the state buffer), padding masks, head dims that are not multiples of 4 or 8, f32 and
 * f16 weights and caches, with and without the LayerNorm and the bias; every variant forced: fused (with and
 * without 8-lane sharing of x) and separate. Also the cache rows it appends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAttentionReference } from '../../src/cpu/decode-attention.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { decodeAttention, type DecodeAttentionKernel } from '../../src/kernels/decode-attention.js';
import { DecodeState } from '../../src/kernels/decode-state.js';
import { dequantizeRef, quantizeRef } from '../../src/cpu/quantize.js';
import type { QuantScheme } from '../../src/quant/format.js';
import { QuantizedTensor, type Weight } from '../../src/quant/quantized-tensor.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

interface Case {
  heads: number;
  headDim: number;
  lengths: number[];
  capacity: number;
  /** The fused weight: float, or quantized (q8/q4, the reference run on its dequantized values). */
  w: DType | QuantScheme;
  cache: DType;
  ln: boolean;
  bias: boolean;
}

async function check(c: Case, kernel: DecodeAttentionKernel, laneSharing?: boolean, subgroupMerge?: boolean): Promise<void> {
  const R = c.lengths.length;
  const D = c.heads * c.headDim;
  const W = 3 * D;
  const C = c.capacity;
  const xs = Float32Array.from(randn(R * D, 1 + D), (v) => v + 0.3);
  const quantized = c.w === 'q8' || c.w === 'q4' ? quantizeRef(randn(W * D, 2 + W, 0.4), W, D, c.w) : null;
  const ws = quantized ? dequantizeRef(quantized) : roundTo(c.w as DType, randn(W * D, 2 + W, 0.4));
  const bs = c.bias ? roundTo('f32', randn(W, 3)) : null;
  const ln = c.ln ? { weight: Float32Array.from(randn(D, 4), (v) => 1 + 0.1 * v), bias: randn(D, 5, 0.1), eps: 1e-5 } : null;
  const cacheData = roundTo(c.cache, randn(R * C * W, 6));
  // Row r masks out its first r positions (left padding).
  const mask = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let j = 0; j < r && j < c.lengths[r]!; j++) mask[r * C + j] = -3.4028234663852886e38;
  const scale = c.headDim ** -0.5;
  const state = DecodeState.create(gpu, { rows: R, capacity: C, histWidth: 4, hidden: D, heads: c.heads, headDim: c.headDim, scale });
  state.setRows(c.lengths.map((len, r) => ({ ids: [1, 2], mask: Array.from({ length: len }, (_, j) => (j < r ? 0 : 1)), position: 2, length: len })));
  const x = Tensor.from(gpu, xs, [R, D]);
  const w: Weight = quantized ? QuantizedTensor.from(gpu, quantized) : Tensor.from(gpu, ws, [W, D], c.w as DType);
  const b = bs ? Tensor.from(gpu, bs, [W]) : null;
  const g = ln ? Tensor.from(gpu, ln.weight, [D]) : null;
  const gb = ln ? Tensor.from(gpu, ln.bias, [D]) : null;
  const cache = Tensor.from(gpu, cacheData, [R, C, W], c.cache);
  const out = decodeAttention({
    state: state.tensor,
    x,
    weight: w,
    bias: b,
    ln: g && gb ? { weight: g, bias: gb, eps: 1e-5 } : null,
    cache,
    heads: c.heads,
    headDim: c.headDim,
    kernel,
    laneSharing,
    subgroupMerge,
  });
  const ref = decodeAttentionReference({
    x: xs,
    weight: ws,
    bias: bs,
    ln,
    cache: cacheData,
    capacity: C,
    lengths: c.lengths,
    mask,
    heads: c.heads,
    headDim: c.headDim,
    scale,
    store: (v) => roundTo(c.cache, [v])[0]!,
  });
  const what = `${JSON.stringify(c)} ${kernel} lanes ${String(laneSharing)} subgroup merge ${String(subgroupMerge)}`;
  // An f16 cache rounds the new key and value: values within an ulp of a rounding boundary may round the other
  // way than the float64 reference's, which moves outputs (about 1 in size) by up to ~1e-3.
  const atol = c.cache === 'f16' ? 2e-3 : 2e-5 * Math.sqrt(D);
  expect(toleranceRatio(await out.read(), ref.out, atol, c.cache === 'f16' ? 2e-3 : 1e-4), what).toBeLessThanOrEqual(1);
  // Appended keys and values: f32 math, then the cache's rounding (an f16 value may land one ulp over).
  expect(toleranceRatio(await cache.read(), ref.cache, 2e-5 * Math.sqrt(D), c.cache === 'f16' ? 1e-3 : 0), `${what} cache`).toBeLessThanOrEqual(1);
  for (const t of [x, w, b, g, gb, cache, out]) t?.dispose();
  state.dispose();
}

// Each distinct head_dim, dtype mix and alignment compiles a pipeline (about a second on lavapipe).
const CASES: Case[] = [
  { heads: 3, headDim: 5, lengths: [0, 6, 2], capacity: 9, w: 'f32', cache: 'f32', ln: true, bias: true }, // D = 15: scalar loads
  { heads: 2, headDim: 8, lengths: [4], capacity: 7, w: 'f16', cache: 'f32', ln: true, bias: false }, // D = 16: 8-wide f16 loads
  { heads: 4, headDim: 24, lengths: [70, 3], capacity: 80, w: 'f16', cache: 'f32', ln: false, bias: true }, // more keys than invocations
  { heads: 1, headDim: 40, lengths: [1, 5, 0, 9], capacity: 10, w: 'f16', cache: 'f16', ln: true, bias: true },
  // Many heads: the fused kernel takes 2 or 4 per workgroup where the merge uses subgroups.
  { heads: 32, headDim: 4, lengths: [3, 0], capacity: 6, w: 'f16', cache: 'f32', ln: true, bias: true },
  { heads: 16, headDim: 8, lengths: [5], capacity: 9, w: 'f32', cache: 'f32', ln: false, bias: true },
  // Quantized weights (q8/q4 decoded by linear_common's loaders): D = 80 (groups of 32 and a short last one),
  // D = 64 (whole groups: the separate projection takes gemv_rows' group steps on 8-lane subgroups).
  { heads: 4, headDim: 20, lengths: [2, 7], capacity: 9, w: 'q4', cache: 'f32', ln: true, bias: true },
  { heads: 8, headDim: 8, lengths: [3], capacity: 5, w: 'q8', cache: 'f16', ln: true, bias: true },
];

describe('decode attention matches the CPU reference', () => {
  // Every case and variant is a pipeline of its own (a few seconds each on lavapipe): each variant takes the
  // cases that exercise it.
  it('fused, x shared across 8-lane subgroups and a subgroup merge where the device has them', async () => {
    for (const i of [0, 3, 4]) await check(CASES[i]!, 'fused');
  });
  it('fused, x read by every lane, merge through workgroup memory', async () => {
    for (const i of [1, 2]) await check(CASES[i]!, 'fused', false, false);
  });
  it('separate (projection, then attention), both merges', async () => {
    for (const i of [2, 5]) await check(CASES[i]!, 'separate');
    await check(CASES[0]!, 'separate', undefined, false);
  });
  it('quantized weights, fused and separate', async () => {
    for (const i of [6, 7]) {
      await check(CASES[i]!, 'fused');
      await check(CASES[i]!, 'separate');
    }
  });
  it('refuses mismatched shapes', () => {
    const state = DecodeState.create(gpu, { rows: 1, capacity: 4, histWidth: 1, hidden: 8, heads: 2, headDim: 4, scale: 0.5 });
    const x = Tensor.from(gpu, new Float32Array(8), [1, 8]);
    const w = Tensor.from(gpu, new Float32Array(24 * 8), [24, 8]);
    const cache = Tensor.empty(gpu, [1, 4, 24]);
    const args = { state: state.tensor, x, weight: w, bias: null, ln: null, cache, heads: 2, headDim: 4 };
    expect(() => decodeAttention({ ...args, heads: 3 })).toThrow(/do not make D/);
    expect(() => decodeAttention({ ...args, weight: x })).toThrow(/weight must be/);
    for (const t of [x, w, cache]) t.dispose();
    state.dispose();
  });
});
