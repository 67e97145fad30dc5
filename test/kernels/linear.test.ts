import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { linearRef, matmulRef } from '../../src/cpu/linear.js';
import { linear, linearProblem, linearWithVariant, matmul, matmulWithVariant, type Activation } from '../../src/kernels/linear.js';
import { clearTuning, defaultVariant, exportTuning, importTuning, pickVariant, tuneLinear } from '../../src/kernels/tuning.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

// Tolerances. f32 math: |err| <= 1e-4 * sqrt(K) (the outputs of these random inputs are about
// sqrt(K) in size), plus 1e-3 relative when the output is stored as f16. The reference always uses
// the values the GPU actually holds (f16 inputs rounded to f16), so f16 storage adds no error of its
// own. The f16-math variant (products and per-slice sums in f16) gets 4e-3 * sqrt(K).
const ATOL_F32 = 1e-4;
const ATOL_F16_MATH = 4e-3;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** A tensor holding `values` in `dtype`, placed `offset` elements into a larger buffer (a view). */
function upload(values: Float32Array, shape: number[], dtype: DType, offset = 0): Tensor {
  if (offset === 0) return Tensor.from(gpu, values, shape, dtype);
  const padded = new Float32Array(values.length + offset + 5).fill(1e4); // garbage around the view
  padded.set(values, offset);
  const base = Tensor.from(gpu, padded, [padded.length], dtype);
  const flat = base.rows(offset, values.length);
  const view = flat.reshape(shape);
  base.dispose();
  flat.dispose();
  return view;
}

interface Case {
  M: number;
  K: number;
  N: number;
  xType: DType;
  wType: DType;
  bias: boolean;
  activation: Activation;
  residual: boolean;
  xOffset?: number;
  leading?: number[]; // extra leading dims of x (their product replaces M)
  biasType?: DType; // default: x's
  residualType?: DType; // default: x's
}

type Epilogue = { bias: boolean; activation: Activation; residual: boolean };
const EPILOGUES: Epilogue[] = [
  { bias: false, activation: 'none', residual: false },
  { bias: true, activation: 'gelu', residual: false },
  { bias: true, activation: 'relu', residual: true },
  { bias: false, activation: 'gelu', residual: true },
  { bias: true, activation: 'none', residual: false },
];
const F32: [DType, DType] = ['f32', 'f32'];
const F16W: [DType, DType] = ['f32', 'f16']; // the model's main case: f16 weights, f32 activations
const F16: [DType, DType] = ['f16', 'f16'];

/**
 * [M, K, N, [x dtype, weight dtype], x view offset]. Every list mixes 4-aligned shapes (vector loads)
 * with unaligned ones (K or the view offset not a multiple of 4: scalar loads and K tails); epilogues
 * rotate over the list. Each distinct (dtypes, alignment) costs a pipeline, which lavapipe takes
 * about a second to compile, so the lists are short.
 */
type Shape = [number, number, number, [DType, DType], number];

function cases(shapes: Shape[]): Case[] {
  return shapes.map(([M, K, N, [xType, wType], xOffset], i) => ({ M, K, N, xType, wType, xOffset, ...EPILOGUES[i % EPILOGUES.length]! }));
}

async function checkLinear(c: Case, choice: VariantChoice | null, atol = ATOL_F32): Promise<void> {
  const { M, K, N } = c;
  const xs = roundTo(c.xType, randn(M * K, 11 + M + K));
  const ws = roundTo(c.wType, randn(N * K, 23 + N));
  const biasType = c.biasType ?? c.xType;
  const residualType = c.residualType ?? c.xType;
  const bs = c.bias ? roundTo(biasType, randn(N, 5)) : null;
  const rs = c.residual ? roundTo(residualType, randn(M * N, 7)) : null;
  const xShape = c.leading ? [...c.leading, K] : [M, K];
  const x = upload(xs, xShape, c.xType, c.xOffset ?? 0);
  const w = Tensor.from(gpu, ws, [N, K], c.wType);
  const b = bs ? Tensor.from(gpu, bs, [N], biasType) : null;
  const r = rs ? Tensor.from(gpu, rs, [...xShape.slice(0, -1), N], residualType) : undefined;
  const options = { activation: c.activation, residual: r };
  const y = choice ? linearWithVariant(choice, x, w, b, options) : linear(x, w, b, options);
  expect(y.shape).toEqual([...xShape.slice(0, -1), N]);
  expect(y.dtype).toBe(c.xType);
  const got = await y.read();
  const want = linearRef(xs, ws, M, K, N, { bias: bs, activation: c.activation, residual: rs });
  const ratio = toleranceRatio(got, want, atol * Math.sqrt(K), c.xType === 'f16' ? 1e-3 : 0);
  expect(ratio, `${JSON.stringify(c)} ${JSON.stringify(choice)}`).toBeLessThanOrEqual(1);
  for (const t of [x, w, b, r, y]) t?.dispose();
}

const GEMV_SHAPES: Shape[] = [
  [1, 88, 257, F16W, 0],
  [1, 36, 40, F16W, 0], // K % 8 != 0: f16 weights 4 at a time (gemv-rows reads 8 when it can)
  [2, 256, 33, F32, 0],
  [7, 88, 9, F16, 4],
  [1, 16, 1001, F16W, 4],
  [1, 1001, 33, F16W, 3],
  [8, 7, 33, F16, 0],
  [3, 33, 7, F32, 0],
  [1, 1, 1, F16W, 0],
];
// gemv-rows sharing x across 8-lane subgroups: f32 x, f16 weights, K % 8 == 0; every row bucket of A.
const LANE_SHAPES: Shape[] = [
  [1, 88, 257, F16W, 0],
  [2, 256, 33, F16W, 4],
  [3, 8, 9, F16W, 0],
  [5, 88, 9, F16W, 8],
  [8, 16, 1001, F16W, 0],
];
// Unaligned f16 activations and f32 everything are covered by the GEMV lists (same load code).
const GENERAL_SHAPES: Shape[] = [
  [9, 88, 33, F16W, 0],
  [257, 88, 33, F32, 0],
  [33, 256, 257, F16, 0],
  [1, 16, 1, F16W, 4],
  [64, 64, 64, F32, 0],
  [7, 1001, 9, F16W, 3],
  [257, 7, 88, F16W, 0],
  [33, 33, 88, F16W, 0],
];
const FEW_SHAPES: Shape[] = [GENERAL_SHAPES[0]!, GENERAL_SHAPES[5]!];
// regblock sharing rows of A across 8-lane subgroups: vector-aligned, with and without 8-wide f16
// loads, K % 8 == 4 (a 4-element tail after the shared steps), M not a multiple of the 8-row block.
const ROW_LANE_SHAPES: Shape[] = [
  [9, 88, 33, F16W, 0],
  [257, 88, 33, F32, 0],
  [33, 256, 257, F16, 0],
  [17, 12, 40, F16W, 4],
  [3, 16, 5, F16W, 0],
];

const VARIANTS: { name: string; choice: VariantChoice; shapes: Shape[]; atol?: number; needs?: 'subgroups' | 'lanes8' }[] = [
  { name: 'gemv-rows', choice: { kind: 'gemv-rows' }, shapes: GEMV_SHAPES },
  { name: 'gemv-rows reading x per lane', choice: { kind: 'gemv-rows', subgroups: false }, shapes: LANE_SHAPES },
  { name: 'gemv-rows sharing x across the subgroup', choice: { kind: 'gemv-rows', subgroups: true }, shapes: LANE_SHAPES, needs: 'lanes8' },
  { name: 'gemv-coop with subgroups', choice: { kind: 'gemv-coop', subgroups: true }, shapes: GEMV_SHAPES, needs: 'subgroups' },
  { name: 'gemv-coop with workgroup memory', choice: { kind: 'gemv-coop', subgroups: false }, shapes: GEMV_SHAPES },
  { name: 'regblock', choice: { kind: 'regblock' }, shapes: GENERAL_SHAPES },
  { name: 'regblock reading rows per lane', choice: { kind: 'regblock', subgroups: false }, shapes: ROW_LANE_SHAPES },
  { name: 'regblock sharing rows across the subgroup', choice: { kind: 'regblock', subgroups: true }, shapes: ROW_LANE_SHAPES, needs: 'lanes8' },
  { name: 'tiled 64', choice: { kind: 'tiled', tile: 'tile64' }, shapes: GENERAL_SHAPES },
  { name: 'tiled 128', choice: { kind: 'tiled', tile: 'tile128' }, shapes: FEW_SHAPES },
  { name: 'tiled 32x64', choice: { kind: 'tiled', tile: 'tile32' }, shapes: FEW_SHAPES },
  { name: 'tiled 64, f16 math', choice: { kind: 'tiled', tile: 'tile64', f16Math: true }, shapes: FEW_SHAPES, atol: ATOL_F16_MATH },
];

function hasLanes8(): boolean {
  return gpu.caps.subgroups && gpu.caps.subgroupMinSize === 8 && gpu.caps.subgroupMaxSize === 8;
}

describe('linear matches the CPU reference', () => {
  for (const v of VARIANTS) {
    it(`${v.name}: f32/f16 storage, every epilogue, offset views`, async () => {
      if (v.needs === 'subgroups' && !gpu.caps.subgroups) return;
      if (v.needs === 'lanes8' && !hasLanes8()) return;
      for (const c of cases(v.shapes)) await checkLinear(c, v.choice, v.atol);
    });
  }

  it('uses scalar loads when forced on aligned shapes', async () => {
    for (const kind of ['gemv-rows', 'gemv-coop', 'regblock', 'tiled'] as const) {
      await checkLinear({ M: kind.startsWith('gemv') ? 1 : 17, K: 64, N: 40, xType: 'f32', wType: 'f16', bias: true, activation: 'gelu', residual: false }, { kind, vec: false });
    }
  });

  it('picks a variant itself for decode, prefill and leading dimensions', async () => {
    await checkLinear({ M: 1, K: 256, N: 300, xType: 'f32', wType: 'f16', bias: true, activation: 'none', residual: false }, null);
    await checkLinear({ M: 64, K: 96, N: 72, xType: 'f32', wType: 'f16', bias: true, activation: 'relu', residual: true }, null);
    await checkLinear({ M: 6, K: 40, N: 24, xType: 'f32', wType: 'f32', bias: true, activation: 'gelu', residual: true, leading: [2, 3] }, null);
  });

  it('mixes storage types: f16 bias and residual with f32 activations, f32 bias with f16 activations', async () => {
    const mixed = { xType: 'f32', wType: 'f16', bias: true, activation: 'gelu', residual: true, biasType: 'f16', residualType: 'f16' } as const;
    await checkLinear({ M: 1, K: 64, N: 40, ...mixed }, null);
    await checkLinear({ M: 17, K: 64, N: 40, ...mixed }, null);
    await checkLinear({ M: 17, K: 64, N: 40, ...mixed }, { kind: 'tiled' });
    await checkLinear({ M: 5, K: 64, N: 40, xType: 'f16', wType: 'f16', bias: true, activation: 'relu', residual: true, biasType: 'f32', residualType: 'f32' }, null);
  });

  it('computes GELU with erf to about 1e-7 over a wide range', async () => {
    // Rows [v, 0, 0, 0] times the weight row [1, 0, 0, 0]: y = gelu(v) up to the kernel's erf.
    const vs = Float32Array.from({ length: 512 }, (_, i) => -12 + (24 * i) / 511);
    const xs = new Float32Array(512 * 4);
    vs.forEach((v, i) => (xs[i * 4] = v));
    const x = Tensor.from(gpu, xs, [512, 4]);
    const w = Tensor.from(gpu, [1, 0, 0, 0], [1, 4]);
    for (const kind of ['regblock', 'tiled'] as const) {
      const y = linearWithVariant({ kind }, x, w, null, { activation: 'gelu' });
      const got = await y.read();
      const want = linearRef(vs, [1], 512, 1, 1, { activation: 'gelu' });
      expect(toleranceRatio(got, want, 2e-7, 2e-7)).toBeLessThanOrEqual(1);
      y.dispose();
    }
    x.dispose();
    w.dispose();
  });
});

describe('variant choice', () => {
  it('tunes by measurement, caches the winner per device and exports it', async () => {
    const made = await tuneLinear(gpu, [{ M: 1, K: 88, N: 64, wDtype: 'f16' }], { force: true, runs: 1 });
    const keys = Object.keys(made);
    expect(keys).toHaveLength(1);
    const choice = made[keys[0]!]!;
    const xs = randn(88, 1);
    const ws = roundTo('f16', randn(64 * 88, 2));
    const x = Tensor.from(gpu, xs, [1, 88]);
    const w = Tensor.from(gpu, ws, [64, 88], 'f16');
    const p = linearProblem(x, w);
    expect(pickVariant(gpu, p)).toEqual(choice);
    const table = exportTuning(gpu);
    clearTuning(gpu);
    expect(pickVariant(gpu, p)).toEqual(defaultVariant(gpu, p));
    expect(importTuning(gpu, { ...table, adapter: 'some other adapter' })).toBe(false);
    expect(importTuning(gpu, table)).toBe(true);
    expect(pickVariant(gpu, p)).toEqual(choice);
    p.out.dispose();
    const y = linear(x, w);
    expect(toleranceRatio(await y.read(), linearRef(xs, ws, 1, 88, 64), ATOL_F32 * Math.sqrt(88), 0)).toBeLessThanOrEqual(1);
    clearTuning(gpu);
    for (const t of [x, w, y]) t.dispose();
  });

  it('follows the rule of thumb by adapter class', () => {
    const software = gpu.caps.isSoftware;
    expect(defaultVariant(gpu, { M: 1, N: 10240, bLayout: 'nk' }).kind).toBe(software ? 'gemv-rows' : 'gemv-coop');
    expect(defaultVariant(gpu, { M: 5, N: 10240, bLayout: 'nk' }).kind).toBe(software ? 'regblock' : 'gemv-coop');
    expect(defaultVariant(gpu, { M: 257, N: 4224, bLayout: 'nk' }).kind).toBe(software ? 'regblock' : 'tiled');
    expect(defaultVariant(gpu, { M: 1, N: 64, bLayout: 'kn' }).kind).toBe(software ? 'regblock' : 'tiled');
    if (!software) expect(defaultVariant(gpu, { M: 32, N: 3072, bLayout: 'nk' }).tile).toBe('tile32');
  });
});

describe('linear outputs', () => {
  it('writes into out, in f16 from f32 activations, and adds a residual in place', async () => {
    const M = 5;
    const K = 24;
    const N = 12;
    const xs = randn(M * K, 1);
    const ws = roundTo('f16', randn(N * K, 2));
    const rs = randn(M * N, 3);
    const x = Tensor.from(gpu, xs, [M, K]);
    const w = Tensor.from(gpu, ws, [N, K], 'f16');
    const out16 = Tensor.empty(gpu, [M, N], 'f16');
    expect(linear(x, w, null, { out: out16 })).toBe(out16);
    expect(toleranceRatio(await out16.read(), linearRef(xs, ws, M, K, N), 1e-4 * Math.sqrt(K), 1e-3)).toBeLessThanOrEqual(1);
    for (const kind of ['gemv-rows', 'regblock', 'tiled'] as const) {
      const acc = Tensor.from(gpu, rs, [M, N]);
      linearWithVariant({ kind }, x, w, null, { residual: acc, out: acc, activation: 'relu' });
      const want = linearRef(xs, ws, M, K, N, { residual: rs, activation: 'relu' });
      expect(toleranceRatio(await acc.read(), want, 1e-4 * Math.sqrt(K), 0)).toBeLessThanOrEqual(1);
      acc.dispose();
    }
    for (const t of [x, w, out16]) t.dispose();
  });
});

describe('matmul matches the CPU reference', () => {
  const kinds: VariantChoice[] = [{ kind: 'regblock' }, { kind: 'tiled', tile: 'tile64' }, { kind: 'tiled', tile: 'tile128' }];

  it('batched, with and without transposeB, every general variant', async () => {
    const shapes: [number, number, number, number][] = [
      [3, 7, 33, 9], // unaligned: scalar loads
      [2, 9, 88, 36], // aligned: vector loads
    ];
    for (const [batch, M, K, N] of shapes) {
      const as = randn(batch * M * K, M);
      const bs = randn(batch * K * N, N);
      for (const transposeB of [false, true]) {
        const a = Tensor.from(gpu, as, [batch, M, K]);
        const b = Tensor.from(gpu, bs, transposeB ? [batch, N, K] : [batch, K, N]);
        const want = matmulRef(as, bs, batch, M, K, N, { transposeB, alpha: 0.125 });
        // [N, K] operands run the kernels the linear tests cover; here they only need the batch handling.
        const choices: (VariantChoice | null)[] = transposeB ? [null, ...(M <= 8 ? [{ kind: 'gemv-coop' as const }] : [])] : [null, ...kinds.slice(0, K % 4 === 0 ? 3 : 2)];
        for (const choice of choices) {
          const c = choice ? matmulWithVariant(choice, a, b, { transposeB, alpha: 0.125 }) : matmul(a, b, { transposeB, alpha: 0.125 });
          expect(c.shape).toEqual([batch, M, N]);
          const ratio = toleranceRatio(await c.read(), want, ATOL_F32 * Math.sqrt(K), 0);
          expect(ratio, `${batch}x${M}x${K}x${N} T=${transposeB} ${JSON.stringify(choice)}`).toBeLessThanOrEqual(1);
          c.dispose();
        }
        a.dispose();
        b.dispose();
      }
    }
  });

  it('broadcasts an unbatched operand and takes f16', async () => {
    const as = roundTo('f16', randn(2 * 5 * 16, 1));
    const bs = roundTo('f16', randn(16 * 12, 2));
    const a = Tensor.from(gpu, as, [2, 5, 16], 'f16');
    const b = Tensor.from(gpu, bs, [16, 12], 'f16');
    const c = matmul(a, b);
    expect(c.shape).toEqual([2, 5, 12]);
    expect(c.dtype).toBe('f16');
    expect(toleranceRatio(await c.read(), matmulRef(as, bs, 1, 10, 16, 12), 4e-4, 1e-3)).toBeLessThanOrEqual(1);
    const bb = Tensor.from(gpu, randn(3 * 16 * 12, 3), [3, 16, 12]);
    const a2 = Tensor.from(gpu, as.subarray(0, 5 * 16), [5, 16]);
    const c2 = matmul(a2, bb);
    expect(c2.shape).toEqual([3, 5, 12]);
    const want = matmulRef(as.subarray(0, 80), await bb.read(), 3, 5, 16, 12, { aBatched: false });
    expect(toleranceRatio(await c2.read(), want, 4e-4, 0)).toBeLessThanOrEqual(1);
    for (const t of [a, b, c, bb, a2, c2]) t.dispose();
  });
});

describe('linear and matmul reject bad input', () => {
  it('throws clear errors and leaks nothing', async () => {
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const x = Tensor.from(gpu, randn(6, 1), [2, 3]);
    const w = Tensor.from(gpu, randn(8, 2), [2, 4]);
    const wi = Tensor.from(gpu, [1, 2, 3, 4, 5, 6], [2, 3], 'i32');
    const w3 = Tensor.from(gpu, randn(6, 2), [2, 3]);
    const r = Tensor.from(gpu, randn(6, 3), [3, 2]);
    const bias = Tensor.from(gpu, randn(3, 4), [3]);
    expect(() => linear(x, w)).toThrow(/K = 3 .*K = 4/);
    expect(() => linear(x, wi)).toThrow(/weight must be f32 or f16/);
    expect(() => linear(x, w3, null, { residual: r })).toThrow(/residual/);
    expect(() => linear(x, w3, bias)).toThrow(/bias must be \[2\]/);
    expect(() => linear(x, w3, null, { out: x })).toThrow(/out/);
    expect(() => linear(x, w3, null, { activation: 'tanh' as Activation })).toThrow(/activation/);
    expect(() => matmul(x, w)).toThrow(/K = 3/);
    const a3 = Tensor.from(gpu, randn(12, 5), [2, 2, 3]);
    const b3 = Tensor.from(gpu, randn(18, 6), [3, 3, 2]);
    expect(() => matmul(a3, b3)).toThrow(/batch dimensions/);
    const empty = Tensor.empty(gpu, [0, 3]);
    const emptyOut = linearWithVariant({ kind: 'gemv-rows' }, empty, w3);
    expect(emptyOut.shape).toEqual([0, 2]);
    empty.dispose();
    emptyOut.dispose();
    expect(() => linearWithVariant({ kind: 'gemv-rows', vec: true }, x, w3)).toThrow(/unaligned/);
    // Sharing x across the subgroup needs f16 weights with K % 8 == 0 (and 8-lane subgroups).
    const x8 = Tensor.from(gpu, randn(8, 5), [1, 8]);
    const w8 = Tensor.from(gpu, randn(16, 6), [2, 8]);
    expect(() => linearWithVariant({ kind: 'gemv-rows', subgroups: true }, x8, w8)).toThrow(/exactly 8 lanes, f32 x and f16 weights/);
    const col = x8.reshape([8, 1]);
    expect(() => matmulWithVariant({ kind: 'regblock', subgroups: true }, w8, col)).toThrow(/B as \[N, K\] and vector loads/);
    for (const t of [x, w, wi, w3, r, bias, a3, b3, x8, w8, col]) t.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});

describe('operands over the storage binding limit', () => {
  let small: Gpu;
  beforeAll(async () => {
    // Pretend bindings may hold only 4 KiB: weights, outputs and batches all need splitting.
    small = await testGpu({ maxStorageBufferBindingSize: 4096 });
  });
  afterAll(() => small?.destroy());

  it('splits rows of the weight and of the output across dispatches', async () => {
    const M = 9;
    const K = 40;
    const N = 300;
    const xs = randn(M * K + 1, 1);
    const ws = roundTo('f16', randn(N * K, 2));
    const bs = randn(N, 3);
    const rs = randn(M * N, 4);
    const base = Tensor.from(small, xs, [M * K + 1]);
    const flat = base.rows(1, M * K);
    const x = flat.reshape([M, K]);
    const b = Tensor.from(small, bs, [N]);
    const r = Tensor.from(small, rs, [M, N]);
    const want = linearRef(xs.subarray(1), ws, M, K, N, { bias: bs, activation: 'gelu', residual: rs });
    const w = Tensor.from(small, ws, [N, K], 'f16');
    for (const choice of [null, { kind: 'tiled' }] as (VariantChoice | null)[]) {
      const options = { activation: 'gelu' as const, residual: r };
      const y = choice ? linearWithVariant(choice, x, w, b, options) : linear(x, w, b, options);
      expect(toleranceRatio(await y.read(), want, ATOL_F32 * Math.sqrt(K), 0), JSON.stringify(choice)).toBeLessThanOrEqual(1);
      y.dispose();
    }
    w.dispose();
    for (const t of [base, flat, x, b, r]) t.dispose();
  });

  it('splits a decode GEMV over the weight rows', async () => {
    const K = 64;
    const N = 700;
    const xs = randn(K, 5);
    const ws = roundTo('f16', randn(N * K, 6));
    const x = Tensor.from(small, xs, [1, K]);
    const w = Tensor.from(small, ws, [N, K], 'f16');
    for (const kind of ['gemv-rows', 'gemv-coop'] as const) {
      const y = linearWithVariant({ kind }, x, w);
      expect(toleranceRatio(await y.read(), linearRef(xs, ws, 1, K, N), ATOL_F32 * Math.sqrt(K), 0)).toBeLessThanOrEqual(1);
      y.dispose();
    }
    x.dispose();
    w.dispose();
  });

  it('splits batches of a batched matmul, and a [K, N] operand along K', async () => {
    const [batch, M, K, N] = [6, 8, 16, 12];
    const as = randn(batch * M * K, 7);
    const bs = randn(batch * K * N, 8);
    const a = Tensor.from(small, as, [batch, M, K]);
    const b = Tensor.from(small, bs, [batch, K, N]);
    const c = matmul(a, b);
    expect(toleranceRatio(await c.read(), matmulRef(as, bs, batch, M, K, N), ATOL_F32 * Math.sqrt(K), 0)).toBeLessThanOrEqual(1);
    // [K, N] = [300, 40] f32 (48 KB) against a 4 KiB limit: partial products over K chunks, summed in place.
    const ws = randn(300 * 40, 9);
    const as2 = randn(2 * 300, 10);
    const tall = Tensor.from(small, ws, [300, 40]);
    const a2 = Tensor.from(small, as2, [2, 300]);
    const c2 = matmul(a2, tall);
    expect(toleranceRatio(await c2.read(), matmulRef(as2, ws, 1, 2, 300, 40), ATOL_F32 * Math.sqrt(300), 0)).toBeLessThanOrEqual(1);
    for (const t of [a, b, c, tall, a2, c2]) t.dispose();
  });
});
