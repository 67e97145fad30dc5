import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { linearRef } from '../../src/cpu/linear.js';
import { dequantizeRef, quantizeRef } from '../../src/cpu/quantize.js';
import { linearWithVariant } from '../../src/kernels/linear.js';
import type { VariantChoice } from '../../src/kernels/linear-problem.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import type { Weight } from '../../src/quant/quantized-tensor.js';
import { Tensor } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';
import { awkwardWeight } from '../support/awkward-weight.js';
import { tensorAt } from '../support/offset-tensor.js';

// gemv-rows reading x through a uniform binding (src/kernels/linear-uniform-a.ts): the default for quantized weights on
// 8-lane software adapters wherever x's binding fits 64 KiB at an aligned offset, else (and for f16 weights, which
// read x one element per lane and measured slower so) the storage binding as before. Each case checks
// the product against the float64 reference and which way x was read (the defines of the pipelines it compiled).
const ATOL = 1e-4;

let gpu: Gpu;
let compiled: Record<string, unknown>[] = [];
beforeAll(async () => {
  gpu = await testGpu();
  const pipeline = gpu.pipeline.bind(gpu);
  vi.spyOn(gpu, 'pipeline').mockImplementation((name, defines) => {
    compiled.push({ name, ...defines });
    return pipeline(name, defines);
  });
});
afterAll(() => gpu?.destroy());

const eightLaneSoftware = () => gpu.caps.isSoftware && gpu.caps.subgroups && gpu.caps.subgroupMinSize === 8 && gpu.caps.subgroupMaxSize === 8;

type Format = 'f16' | 'q8' | 'q4';
interface Case {
  M: number;
  K: number;
  N: number;
  /** x starts this many elements into its buffer (a view). */
  xOffset?: number;
  residual?: boolean;
}

function weight(format: Format, N: number, K: number, seed: number): { w: Weight; ref: Float32Array } {
  const values = awkwardWeight(N, K, seed);
  if (format === 'f16') return { w: Tensor.from(gpu, values, [N, K], 'f16'), ref: roundTo('f16', values) };
  const q = quantizeRef(values, N, K, format);
  return { w: QuantizedTensor.from(gpu, q), ref: dequantizeRef(q) };
}

/** Runs the case and returns AU_VEC4 of the gemv-rows pipeline it compiled (0: x read from storage). */
async function run(format: Format, c: Case, choice: VariantChoice): Promise<number> {
  const { M, K, N } = c;
  const { w, ref } = weight(format, N, K, 11 + N + K);
  const xs = randn(M * K, 3 + M);
  const bs = randn(N, 5);
  const rs = c.residual ? randn(M * N, 9) : null;
  const x = tensorAt(gpu, xs, [M, K], c.xOffset ?? 0);
  const b = Tensor.from(gpu, bs, [N]);
  const r = rs ? Tensor.from(gpu, rs, [M, N]) : undefined;
  compiled = [];
  const y = linearWithVariant(choice, x, w, b, { residual: r });
  const got = await y.read();
  const want = linearRef(xs, ref, M, K, N, { bias: bs, residual: rs });
  expect(toleranceRatio(got, want, ATOL * Math.sqrt(K), 0), `${format} ${JSON.stringify(c)} ${JSON.stringify(choice)}`).toBeLessThanOrEqual(1);
  for (const t of [x, w, b, r, y]) t?.dispose();
  const gemv = compiled.filter((d) => d.name === 'gemv_rows');
  expect(gemv.length, 'a gemv_rows pipeline compiled for this case').toBe(1);
  return gemv[0]!.A_UNIFORM === true ? Number(gemv[0]!.AU_VEC4) : 0;
}

describe('gemv-rows reads x through a uniform binding where it fits', () => {
  // K: whole groups of 32 (quantized groups per step, f16 8 weights per load); N: not a multiple of the rows per
  // workgroup. Distinct shapes per case so that every case compiles its own pipeline.
  for (const format of ['f16', 'q8', 'q4'] as const) {
    it(`${format}: one row of x, then three rows from an offset view`, async () => {
      const one = await run(format, { M: 1, K: 160, N: 37 }, { kind: 'gemv-rows' });
      const three = await run(format, { M: 3, K: 96, N: 19, xOffset: 4, residual: true }, { kind: 'gemv-rows' });
      if (eightLaneSoftware() && format !== 'f16') {
        expect(one).toBe(160 / 4);
        // The binding starts at the buffer's aligned start, 4 elements before x: (4 + 3 * 96) / 4 vec4s.
        expect(three).toBe((4 + 3 * 96) / 4);
      } else {
        expect([one, three]).toEqual([0, 0]);
      }
    });

    it(`${format}: x over 64 KiB, or the uniform read turned off, reads storage with the same result`, async () => {
      // 2 rows of K = 8224 (257 groups) are 65,792 bytes of f32: one binding too many for a uniform buffer.
      expect(await run(format, { M: 2, K: 8224, N: 9 }, { kind: 'gemv-rows' })).toBe(0);
      expect(await run(format, { M: 5, K: 224, N: 21 }, { kind: 'gemv-rows', uniformA: false })).toBe(0);
    });
  }
});
