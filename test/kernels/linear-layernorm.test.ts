/**
 * linear with a LayerNorm prologue, y = act(LN(x) W^T + b) + residual, against the CPU references (layerNormCpu
 * then linearRef, float64) at awkward shapes: every GEMV variant fuses it into its own dispatch when asked to
 * (`fuseLayerNorm`; rows of A normalised into workgroup memory), every other kernel, a GEMV whose rows would not
 * fit workgroup memory, and gemv-rows by default on software adapters, run a LayerNorm dispatch first. Both must
 * give the same numbers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { layerNormCpu } from '../../src/cpu/layernorm.js';
import { linearRef } from '../../src/cpu/linear.js';
import { linear, linearWithVariant, type Activation } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
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
  M: number;
  K: number;
  N: number;
  x: DType;
  /** Float weights, or quantized ones (the reference takes their dequantized values). */
  w: DType | QuantScheme;
  ln?: DType;
  activation?: Activation;
  bias?: boolean;
  residual?: boolean;
  /** x as a view this many elements into its buffer. */
  offset?: number;
  /** The rows of x: mean and spread (LayerNorm must not cancel a large mean). */
  mean?: number;
}

async function check(c: Case, choice: VariantChoice | null, expectDispatches: number | null): Promise<void> {
  const { M, K, N } = c;
  const lnType = c.ln ?? 'f32';
  const xs = roundTo(c.x, Float32Array.from(randn(M * K, 3 + K), (v) => v * 2 + (c.mean ?? 0.5)));
  const quantized = c.w === 'q8' || c.w === 'q4' ? quantizeRef(randn(N * K, 17 + N, 0.3), N, K, c.w) : null;
  const ws = quantized ? dequantizeRef(quantized) : roundTo(c.w as DType, randn(N * K, 17 + N, 0.3));
  const gs = roundTo(lnType, Float32Array.from(randn(K, 5), (v) => 1 + 0.2 * v));
  const bs = roundTo(lnType, randn(K, 6, 0.1));
  const bias = c.bias ? roundTo(c.x, randn(N, 9)) : null;
  const res = c.residual ? roundTo(c.x, randn(M * N, 10)) : null;
  const off = c.offset ?? 0;
  const base = Tensor.from(gpu, Float32Array.from({ length: M * K + off }, (_, i) => (i < off ? 1e4 : xs[i - off]!)), [M * K + off], c.x);
  const x = base.rows(off, M * K).reshape([M, K]);
  base.dispose();
  const w: Weight = quantized ? QuantizedTensor.from(gpu, quantized) : Tensor.from(gpu, ws, [N, K], c.w as DType);
  const g = Tensor.from(gpu, gs, [K], lnType);
  const b = Tensor.from(gpu, bs, [K], lnType);
  const bt = bias ? Tensor.from(gpu, bias, [N], c.x) : null;
  const rt = res ? Tensor.from(gpu, res, [M, N], c.x) : undefined;
  const d0 = gpu.stats().dispatches;
  const options = { activation: c.activation ?? 'none', residual: rt, layerNorm: { weight: g, bias: b, eps: 1e-5 } };
  const y = choice ? linearWithVariant(choice, x, w, bt, options) : linear(x, w, bt, options);
  const dispatches = gpu.stats().dispatches - d0;
  const got = await y.read();
  const normed = layerNormCpu(xs, gs, bs, 1e-5);
  const want = linearRef(normed, ws, M, K, N, { bias, activation: c.activation, residual: res });
  const what = `${JSON.stringify(c)} ${JSON.stringify(choice)}`;
  expect(toleranceRatio(got, want, 2e-4 * Math.sqrt(K), c.x === 'f16' ? 2e-3 : 0), what).toBeLessThanOrEqual(1);
  if (expectDispatches !== null) expect(dispatches, what).toBe(expectDispatches);
  for (const t of [x, w, g, b, bt, rt, y]) t?.dispose();
}

// Each distinct (row bucket, alignment, dtypes) compiles a pipeline (about a second on lavapipe): the lists
// mix aligned and unaligned K and view offsets, 1..8 rows, large means, without many combinations.
const SHAPES: Case[] = [
  { M: 1, K: 88, N: 257, x: 'f32', w: 'f16', bias: true, activation: 'relu' },
  { M: 1, K: 33, N: 9, x: 'f32', w: 'f16', residual: true, offset: 3, mean: 40 },
  { M: 3, K: 7, N: 40, x: 'f16', w: 'f16', ln: 'f16', activation: 'gelu' },
  { M: 2, K: 1001, N: 9, x: 'f32', w: 'f32', bias: true, offset: 1 },
];
// 8-lane sharing needs f32 x, f16 weights and K % 8 == 0.
const LANE_SHAPES: Case[] = [
  { M: 1, K: 88, N: 257, x: 'f32', w: 'f16', bias: true, activation: 'relu' },
  { M: 2, K: 256, N: 33, x: 'f32', w: 'f16', residual: true, offset: 8, mean: -30 },
  { M: 8, K: 16, N: 1001, x: 'f32', w: 'f16' },
];

function lanes8(): boolean {
  return gpu.caps.subgroups && gpu.caps.subgroupMinSize === 8 && gpu.caps.subgroupMaxSize === 8;
}

describe('linear with a LayerNorm prologue matches LayerNorm then linear on the CPU', () => {
  const fused: { name: string; choice: VariantChoice; shapes: Case[]; needs?: 'subgroups' | 'lanes8' }[] = [
    // Every shape of each list runs on some variant; each variant takes two or three (cold pipeline compiles
    // take seconds each on lavapipe).
    { name: 'gemv-rows', choice: { kind: 'gemv-rows', fuseLayerNorm: true }, shapes: SHAPES.slice(0, 3) },
    { name: 'gemv-rows reading x per lane', choice: { kind: 'gemv-rows', subgroups: false, fuseLayerNorm: true }, shapes: LANE_SHAPES.slice(1) },
    { name: 'gemv-rows sharing x across the subgroup', choice: { kind: 'gemv-rows', subgroups: true, fuseLayerNorm: true }, shapes: LANE_SHAPES.slice(0, 2), needs: 'lanes8' },
    { name: 'gemv-coop with subgroups', choice: { kind: 'gemv-coop', subgroups: true }, shapes: [SHAPES[1]!, SHAPES[3]!], needs: 'subgroups' },
    { name: 'gemv-coop with workgroup memory', choice: { kind: 'gemv-coop', subgroups: false }, shapes: [SHAPES[0]!, SHAPES[2]!, SHAPES[3]!] },
  ];
  for (const v of fused) {
    it(`${v.name}: fused, one dispatch`, async () => {
      if (v.needs === 'subgroups' && !gpu.caps.subgroups) return;
      if (v.needs === 'lanes8' && !lanes8()) return;
      for (const c of v.shapes) await check(c, v.choice, 1);
    });
  }

  it('quantized weights: fused into gemv-rows (group steps on 8-lane subgroups) and gemv-coop', async () => {
    // K = 256: whole groups (group steps with x shared by broadcast where the device has 8-lane subgroups);
    // K = 88: a short last group (ld_b8 / ld_b4 decode per element).
    await check({ M: 1, K: 256, N: 65, x: 'f32', w: 'q4', bias: true, residual: true, mean: -30 }, { kind: 'gemv-rows', fuseLayerNorm: true }, 1);
    await check({ M: 2, K: 256, N: 33, x: 'f32', w: 'q8', activation: 'relu' }, { kind: 'gemv-rows', fuseLayerNorm: true }, 1);
    await check({ M: 1, K: 88, N: 40, x: 'f32', w: 'q8', bias: true }, { kind: 'gemv-rows', fuseLayerNorm: true }, 1);
    await check({ M: 1, K: 88, N: 9, x: 'f32', w: 'q4', residual: true }, { kind: 'gemv-coop', subgroups: false }, 1);
  });

  it('forced scalar loads on aligned shapes', async () => {
    await check({ M: 1, K: 64, N: 40, x: 'f32', w: 'f16', bias: true }, { kind: 'gemv-rows', vec: false, fuseLayerNorm: true }, 1);
    await check({ M: 2, K: 64, N: 40, x: 'f32', w: 'f16', residual: true }, { kind: 'gemv-coop', vec: false }, 1);
  });

  it('other kernels, and rows too long for workgroup memory, run the LayerNorm as its own dispatch', async () => {
    await check({ M: 9, K: 88, N: 33, x: 'f32', w: 'f16', bias: true }, { kind: 'regblock' }, 2);
    await check({ M: 17, K: 33, N: 40, x: 'f32', w: 'f32', residual: true }, { kind: 'tiled', tile: 'tile64' }, 2);
    const tooLong = Math.ceil(gpu.caps.maxComputeWorkgroupStorageSize / 4 / 8) * 8 + 8;
    await check({ M: 1, K: tooLong, N: 5, x: 'f32', w: 'f16' }, { kind: 'gemv-rows', fuseLayerNorm: true }, 2);
    // Software adapters fuse only small grids (each workgroup repeats the prologue): 30 workgroups of gemv-coop.
    await check({ M: 1, K: 64, N: 480, x: 'f32', w: 'f16' }, { kind: 'gemv-coop', subgroups: false }, gpu.caps.isSoftware ? 2 : 1);
    // The default choice: a GEMV for one row (fused on GPUs; on software adapters gemv-rows takes a LayerNorm
    // dispatch first, for every weight format), a matmul for many (not fused).
    await check({ M: 1, K: 256, N: 300, x: 'f32', w: 'f16', bias: true }, null, gpu.caps.isSoftware ? 2 : 1);
    await check({ M: 1, K: 256, N: 40, x: 'f32', w: 'q4', bias: true }, null, gpu.caps.isSoftware ? 2 : 1);
    await check({ M: 1, K: 256, N: 40, x: 'f32', w: 'f16', bias: true }, { kind: 'gemv-rows', fuseLayerNorm: false }, 2);
    await check({ M: 40, K: 96, N: 72, x: 'f32', w: 'f16', bias: true, residual: true }, null, 2);
  });

  it('refuses a LayerNorm of the wrong size or type', () => {
    const x = Tensor.from(gpu, new Float32Array(8), [1, 8]);
    const w = Tensor.from(gpu, new Float32Array(16), [2, 8]);
    const g = Tensor.from(gpu, new Float32Array(7), [7]);
    const g8 = Tensor.from(gpu, new Float32Array(8), [8]);
    const h8 = Tensor.from(gpu, new Float32Array(8), [8], 'f16');
    expect(() => linear(x, w, null, { layerNorm: { weight: g, bias: g, eps: 1e-5 } })).toThrow(/8 elements/);
    expect(() => linear(x, w, null, { layerNorm: { weight: g8, bias: h8, eps: 1e-5 } })).toThrow(/share a dtype/);
    expect(() => linear(x, w, null, { layerNorm: { weight: g8, bias: g8, eps: -1 } })).toThrow(/eps/);
    for (const t of [x, w, g, g8, h8]) t.dispose();
  });
});
