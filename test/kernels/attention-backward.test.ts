/**
 * The attention backward pass: the float64 reference against central finite differences (causal, padding,
 * a fully masked key, q/k/v as views of one tensor), the log-sum-exp the forward kernels save, and the GPU
 * gradients against the reference at awkward shapes (head_dim 1, odd and vec4, Lq != Lk, a KV length below
 * the rows held, masks, fused operands sharing one gradient tensor, f16 operands).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attentionBackwardReference, attentionLseReference, attentionReference64, type HostAttentionOptions, type HostHeads } from '../../src/cpu/attention.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { attention, attentionBackward, type AttentionKernel, type HeadsView } from '../../src/kernels/attention.js';
import { zeros } from '../../src/kernels/fill.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { randn, roundTo, testGpu, toleranceRatio } from '../helpers.js';

const F32_MIN = -3.4028234663852886e38;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('attention backward reference', () => {
  it('equals central finite differences, with causal masking, padding and fused operands', () => {
    const [B, L, H, D] = [2, 4, 2, 3];
    const width = H * D;
    // q, k and v as column ranges of one [B, L, 3 * width + 1] array, as OPT's fused projection lays them out.
    const stride = 3 * width + 1;
    const data = Float64Array.from(randn(B * L * stride, 7));
    const op = (column: number): HostHeads => ({ data, batch: B, length: L, rowStride: stride, column });
    const [q, k, v] = [op(1), op(1 + width), op(1 + 2 * width)];
    // Batch 1 pads its first key with float32's lowest value (a fully masked key); batch 0 has a soft mask.
    const mask = { data: [0, -0.5, 0.25, 0, F32_MIN, 0, 0, 0], rowStride: L };
    const o: HostAttentionOptions = { numHeads: H, headDim: D, scale: 0.7, causal: true, mask };
    const g = Float64Array.from(randn(B * L * width, 8));
    const f = () => attentionReference64(q, k, v, o).reduce((s, x, i) => s + x * g[i]!, 0);
    const grads = attentionBackwardReference(q, k, v, g, o);
    const h = 1e-6;
    for (let e = 0; e < data.length; e++) {
      const col = e % stride;
      if (col === 0) continue; // not part of any operand
      const keep = data[e]!;
      data[e] = keep + h;
      const up = f();
      data[e] = keep - h;
      const down = f();
      data[e] = keep;
      const want = col <= width ? grads.dq[e]! : col <= 2 * width ? grads.dk[e]! : grads.dv[e]!;
      expect(Math.abs((up - down) / (2 * h) - want), `element ${e}`).toBeLessThan(1e-7);
    }
  });
});

interface Case {
  batch: number;
  lq: number;
  lk: number;
  heads: number;
  headDim: number;
  causal?: boolean;
  kvLength?: number;
  pads?: number[];
  fused?: boolean;
  dtype?: DType;
  kernels: AttentionKernel[];
}

async function check(c: Case): Promise<void> {
  const dtype = c.dtype ?? 'f32';
  const width = c.heads * c.headDim;
  const owned: Tensor[] = [];
  const make = (length: number, column: number, extra: number, seed: number, heads = width) => {
    const stride = column + heads + extra;
    const data = roundTo(dtype, randn(c.batch * length * stride, seed));
    const t = Tensor.from(gpu, data, [c.batch, length, stride], dtype);
    owned.push(t);
    return { host: { data, batch: c.batch, length, rowStride: stride, column } as HostHeads, t, column };
  };
  let ops: { host: HostHeads; t: Tensor; column: number }[];
  if (c.fused) {
    const all = make(c.lq, 4, 4, 3, 3 * width);
    ops = [4, 4 + width, 4 + 2 * width].map((column) => ({ host: { ...all.host, column }, t: all.t, column }));
  } else {
    ops = [make(c.lq, 1, 2, 3), make(c.lk, 0, 1, 4), make(c.lk, 2, 0, 5)];
  }
  const [q, k, v] = ops as [(typeof ops)[0], (typeof ops)[0], (typeof ops)[0]];
  const kvLength = c.kvLength ?? c.lk;
  let mask: { data: Float32Array; rowStride: number } | undefined;
  let maskT: Tensor | undefined;
  if (c.pads) {
    const data = new Float32Array(c.batch * (kvLength + 2));
    c.pads.forEach((n, b) => data.fill(F32_MIN, b * (kvLength + 2), b * (kvLength + 2) + n));
    mask = { data, rowStride: kvLength + 2 };
    maskT = Tensor.from(gpu, data, [c.batch, kvLength + 2]);
    owned.push(maskT);
  }
  const o: HostAttentionOptions = { numHeads: c.heads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), causal: c.causal, kvLength: c.kvLength, mask };
  const gv = randn(c.batch * c.lq * width, 9);
  const dOut = Tensor.from(gpu, gv, [c.batch, c.lq, width]);
  owned.push(dOut);
  const ref = attentionBackwardReference(q.host, k.host, v.host, gv, o);
  const lseRef = attentionLseReference(q.host, k.host, o);
  const view = (x: typeof q): HeadsView => ({ tensor: x.t, column: x.column });
  for (const kernel of c.kernels) {
    const lse = Tensor.empty(gpu, [c.batch, c.lq, c.heads, 2]);
    const options = { numHeads: c.heads, headDim: c.headDim, scale: o.scale, causal: c.causal, kvLength: c.kvLength, mask: maskT, kernel };
    const out = attention(view(q), view(k), view(v), { ...options, lse });
    // The saved log-sum-exp pair (max, log-sum; f32 sums over up to Lk terms; rows whose keys are all masked
    // have max -3e38 and log-sum log(n)).
    expect(toleranceRatio(await lse.read(), lseRef, 2e-6, 2e-6), `${kernel} lse`).toBeLessThanOrEqual(1);
    // One gradient tensor per distinct operand tensor (a fused operand shares one).
    const gradOf = new Map<Tensor, Tensor>();
    for (const x of [q, k, v]) if (!gradOf.has(x.t)) gradOf.set(x.t, zeros(gpu, x.t.shape));
    const g = (x: typeof q): HeadsView => ({ tensor: gradOf.get(x.t)!, column: x.column });
    attentionBackward(view(q), view(k), view(v), out, dOut, lse, { dq: g(q), dk: g(k), dv: g(v) }, options);
    // f32 sums over Lk (dq) or Lq (dk, dv) products of O(1) terms; f16 operands make dO.O and the scores
    // come from rounded values on both sides, so the same bound holds.
    const tol = 5e-6 * Math.sqrt(Math.max(c.lq, kvLength) * c.headDim);
    for (const [name, x, want] of [
      ['dq', q, ref.dq],
      ['dk', k, ref.dk],
      ['dv', v, ref.dv],
    ] as const) {
      const got = await gradOf.get(x.t)!.read();
      // A fused tensor's gradient holds all three: compare each operand's own columns.
      const cols = (e: number) => {
        const col = e % x.host.rowStride;
        return col >= x.column && col < x.column + width;
      };
      const gotCols = Float64Array.from(got).filter((_, e) => cols(e));
      const wantCols = want.filter((_, e) => cols(e));
      expect(toleranceRatio(gotCols, wantCols, tol, 1e-4), `${kernel} ${name}`).toBeLessThanOrEqual(1);
      if (!c.fused) expect(Float64Array.from(got).filter((_, e) => !cols(e)).every((v) => v === 0), `${name} outside its columns`).toBe(true);
    }
    for (const t of [lse, out, ...gradOf.values()]) t.dispose();
  }
  for (const t of owned) t.dispose();
}

describe('attention backward kernels match the reference', () => {
  const lanes = (): AttentionKernel[] => (gpu.caps.subgroups && gpu.caps.subgroupMinSize === 8 && gpu.caps.subgroupMaxSize === 8 ? ['lanes'] : []);
  it('head_dim 1, one query, one key', async () => {
    await check({ batch: 1, lq: 1, lk: 1, heads: 1, headDim: 1, kernels: ['rows', 'tiled'] });
  });
  it('odd head_dim, Lq != Lk, padding masks, KV length below the rows held', async () => {
    await check({ batch: 2, lq: 5, lk: 13, kvLength: 11, heads: 3, headDim: 7, pads: [0, 3], kernels: ['rows', 'tiled'] });
  });
  it('causal self-attention on fused q/k/v views with one shared gradient (vec4 loads)', async () => {
    await check({ batch: 2, lq: 19, lk: 19, heads: 2, headDim: 16, causal: true, pads: [2, 0], fused: true, kernels: ['rows', 'tiled', ...lanes()] });
  });
  // (Training keeps activations in f32; an f16 forward output would round dO . O by 2^-11 relative.)
  it('cross-attention shapes of the Q-Former (queries to image tokens)', async () => {
    await check({ batch: 2, lq: 8, lk: 17, heads: 4, headDim: 8, kernels: ['rows', 'tiled'] });
  });
  it('refuses the split kernels when the log-sum-exp is asked for, and mismatched gradient views', () => {
    const t = Tensor.from(gpu, randn(2 * 3 * 8, 1), [2, 3, 8]);
    const lse = Tensor.empty(gpu, [2, 3, 2, 2]);
    const o = { numHeads: 2, headDim: 4, scale: 0.5 };
    expect(() => attention(t, t, t, { ...o, lse, kernel: 'split' })).toThrow(/log-sum-exp/);
    expect(() => attention(t, t, t, { ...o, lse: Tensor.empty(gpu, [5]) })).toThrow(/lse must be f32 \[2, 3, 2, 2\]/);
    const out = attention(t, t, t, { ...o, lse });
    const wrong = zeros(gpu, [2, 3, 9]);
    const g = zeros(gpu, [2, 3, 8]);
    expect(() => attentionBackward(t, t, t, out, out, lse, { dq: wrong, dk: g, dv: g }, o)).toThrow(/shaped like its operand/);
    expect(() => attentionBackward(t, t, t, out, out, lse, { dq: t, dk: g, dv: g }, o)).toThrow(/share storage/);
    for (const x of [t, lse, out, wrong, g]) x.dispose();
  });
});
