import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { linearRef } from '../../src/cpu/linear.js';
import { dequantizeRef, quantizeRef, type QuantizedRows } from '../../src/cpu/quantize.js';
import { linear, linearWithVariant, type Activation } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import { QUANT_SCHEMES, type QuantScheme } from '../../src/quant/format.js';
import { Tensor } from '../../src/tensor.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';
import { awkwardWeight } from '../support/awkward-weight.js';
import { tensorAt } from '../support/offset-tensor.js';

// Quantized weights through every linear kernel, against the float64 reference run on the dequantized
// weights (w' = q * s exactly): the only error is f32 accumulation, so the float kernels' bound holds.
const ATOL = 1e-4;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

interface Case {
  M: number;
  K: number;
  N: number;
  bias?: boolean;
  activation?: Activation;
  residual?: boolean;
  xOffset?: number;
  /** Use rows [rowStart, rowStart + N) of a larger weight (a view, as fuse_qkv makes). */
  rowStart?: number;
}

async function check(g: Gpu, scheme: QuantScheme, c: Case, choice: VariantChoice | null): Promise<void> {
  const { M, K, N } = c;
  const start = c.rowStart ?? 0;
  const full = awkwardWeight(N + start + 1, K, 7 + N + K);
  const q = quantizeRef(full, N + start + 1, K, scheme);
  const all = QuantizedTensor.from(g, q);
  const w = all.rows(start, N);
  all.dispose();
  const wq = dequantizeRef(q).subarray(start * K, (start + N) * K);
  const xs = randn(M * K, 3 + M);
  const bs = c.bias ? randn(N, 5) : null;
  const rs = c.residual ? randn(M * N, 9) : null;
  const x = tensorAt(g, xs, [M, K], c.xOffset ?? 0);
  const b = bs ? Tensor.from(g, bs, [N]) : null;
  const r = rs ? Tensor.from(g, rs, [M, N]) : undefined;
  const options = { activation: c.activation ?? 'none', residual: r };
  const y = choice ? linearWithVariant(choice, x, w, b, options) : linear(x, w, b, options);
  const got = await y.read();
  const want = linearRef(xs, wq, M, K, N, { bias: bs, activation: options.activation, residual: rs });
  expect(toleranceRatio(got, want, ATOL * Math.sqrt(K), 0), `${scheme} ${JSON.stringify(c)} ${JSON.stringify(choice)}`).toBeLessThanOrEqual(1);
  for (const t of [x, w, b, r, y]) t?.dispose();
}

// K: whole groups (64, 96), a short last group with K % 8 == 0 (88), K % 8 == 4 (36, 100), odd K (37, 7).
// Every distinct variant, alignment and row bucket compiles a pipeline (about a second each on lavapipe), so
// the lists are short and each shape covers a different path.
const GEMV: Case[] = [
  { M: 1, K: 96, N: 67, bias: true }, // groups of 32 with subgroups (gemv-rows on 8 lanes)
  { M: 1, K: 88, N: 33, activation: 'relu', residual: true, rowStart: 3 }, // 8 codes at a time, a row view
  { M: 2, K: 64, N: 9, bias: true, activation: 'gelu', xOffset: 4 }, // two rows of x, an offset view
  { M: 1, K: 37, N: 20, bias: true, xOffset: 1 }, // scalar loads and a K tail
  { M: 5, K: 100, N: 17, residual: true, rowStart: 1 }, // five rows of x, K % 8 == 4
];
const GENERAL: Case[] = [
  { M: 9, K: 96, N: 33, bias: true, activation: 'gelu' },
  { M: 17, K: 88, N: 40, residual: true, rowStart: 2 },
  { M: 33, K: 37, N: 9, bias: true, xOffset: 3 },
  { M: 12, K: 36, N: 20, activation: 'relu' },
];

const VARIANTS: { name: string; choice: VariantChoice; cases: Case[]; subgroups?: boolean }[] = [
  { name: 'gemv-rows', choice: { kind: 'gemv-rows' }, cases: GEMV },
  { name: 'gemv-rows, 1 row per invocation', choice: { kind: 'gemv-rows', rows: 1 }, cases: [GEMV[0]!] },
  { name: 'gemv-rows, 4 rows per invocation', choice: { kind: 'gemv-rows', rows: 4 }, cases: [GEMV[2]!] },
  { name: 'gemv-rows reading x per lane', choice: { kind: 'gemv-rows', subgroups: false }, cases: [GEMV[0]!] },
  { name: 'gemv-coop', choice: { kind: 'gemv-coop', subgroups: false }, cases: [GEMV[0]!, GEMV[3]!, GEMV[4]!] },
  { name: 'gemv-coop with subgroups', choice: { kind: 'gemv-coop', subgroups: true }, cases: [GEMV[1]!], subgroups: true },
  { name: 'regblock', choice: { kind: 'regblock' }, cases: GENERAL.slice(0, 3) },
  { name: 'regblock reading rows per lane', choice: { kind: 'regblock', subgroups: false }, cases: [GENERAL[3]!] },
  { name: 'tiled 64', choice: { kind: 'tiled', tile: 'tile64' }, cases: [GENERAL[1]!, GENERAL[2]!] },
  { name: 'tiled 32x64', choice: { kind: 'tiled', tile: 'tile32' }, cases: [GENERAL[0]!] },
];

describe('linear with quantized weights matches the dequantizing CPU reference', () => {
  for (const scheme of QUANT_SCHEMES) {
    for (const v of VARIANTS) {
      it(`${scheme}, ${v.name}`, async () => {
        if (v.subgroups && !gpu.caps.subgroups) return;
        for (const c of v.cases) await check(gpu, scheme, c, v.choice);
      });
    }
    it(`${scheme}, the kernel picked by shape (decode, prefill)`, async () => {
      await check(gpu, scheme, { M: 1, K: 64, N: 40, bias: true }, null);
      await check(gpu, scheme, { M: 41, K: 64, N: 40, bias: true, activation: 'relu' }, null);
    });
  }
});

describe('quantized weights over the storage binding limit', () => {
  let small: Gpu;
  beforeAll(async () => {
    small = await testGpu({ maxStorageBufferBindingSize: 4096 });
  });
  afterAll(() => small?.destroy());

  it('splits the codes and scales by rows across dispatches', async () => {
    for (const scheme of QUANT_SCHEMES) {
      // q8 rows of K = 200 take 224 bytes: 4096-byte bindings hold ~17 rows of 300.
      await check(small, scheme, { M: 1, K: 200, N: 300, bias: true, rowStart: 5 }, { kind: 'gemv-rows' });
      await check(small, scheme, { M: 1, K: 200, N: 300, residual: true }, { kind: 'gemv-coop' });
      await check(small, scheme, { M: 9, K: 96, N: 300, bias: true, activation: 'gelu' }, null);
    }
  });
});

describe('QuantizedTensor', () => {
  it('holds rows of whole groups and views rows of codes and scales together', () => {
    const q: QuantizedRows = quantizeRef(randn(6 * 40, 1), 6, 40, 'q4');
    const t = QuantizedTensor.from(gpu, q);
    expect(t.codes.shape).toEqual([6, 8]); // 2 groups of 32 nibbles = 32 bytes = 8 words
    expect(t.scales.shape).toEqual([6, 2]);
    expect(t.paddedK).toBe(64);
    const v = t.rows(2, 3);
    expect(v.shape).toEqual([3, 40]);
    expect(v.codes.offset).toBe(16);
    expect(v.scales.offset).toBe(4);
    t.dispose();
    v.dispose();
    expect(v.disposed).toBe(true);
  });
});
