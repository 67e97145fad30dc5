import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attentionProbsReference, attentionReference, type HostHeads } from '../../src/cpu/attention.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { attention, attentionProbs, type AttentionKernel, type AttentionOptions, type HeadsView } from '../../src/kernels/attention.js';
import { Tensor, type DType } from '../../src/tensor.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/util/half.js';
import { randn, testGpu, toleranceRatio } from '../helpers.js';

/*
 * Every kernel variant runs on this adapter (lavapipe in CI) through the `kernel` option, against the
 * f64 reference in src/cpu/attention.ts fed with the very values the GPU sees (f16 operands are rounded
 * to f16 on the host first). Tolerances, as |gpu - ref| <= atol + rtol * |ref|:
 * - f32 output: atol 2e-5, rtol 1e-4 (f32 accumulation over up to 1001 keys; outputs are O(1));
 * - f16 output: atol 1e-3, rtol 2e-3 (one f16 rounding of an O(1) result: half an ulp is <= 1e-3 below 4).
 * Probabilities (f32): atol 1e-6, rtol 1e-4.
 */
const TOL: Record<DType, [number, number]> = { f32: [2e-5, 1e-4], f16: [1e-3, 2e-3], i32: [0, 0], u32: [0, 0] };
const KERNELS: readonly AttentionKernel[] = ['rows', 'rows-split', 'tiled', 'split'];
/** Needs 8-lane subgroups and vec4-aligned operands: runs on LANE_CASES where the adapter has them. */
const LANES_KERNEL: AttentionKernel = 'lanes';
/** float32's lowest value: the padding value HF puts into additive masks. */
const F32_MIN = -3.4028234663852886e38;

let gpu: Gpu;
let baselineLiveBytes = 0;
beforeAll(async () => {
  gpu = await testGpu();
  await gpu.sync();
  baselineLiveBytes = gpu.stats().liveBytes;
});
afterAll(() => gpu?.destroy());

/** Values as the GPU will see them once stored with `dtype`. */
function asStored(x: Float32Array, dtype: DType): Float32Array {
  return dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : x;
}

interface Operand {
  host: HostHeads;
  view: Tensor | HeadsView;
  owned: Tensor;
}

/** [batch, length, rowStride] random rows holding the heads at `column`; extra columns hold noise. */
function makeOperand(batch: number, length: number, width: number, column: number, extra: number, dtype: DType, seed: number): Operand {
  const rowStride = column + width + extra;
  const data = asStored(randn(batch * length * rowStride, seed), dtype);
  const tensor = Tensor.from(gpu, data, [batch, length, rowStride], dtype);
  return { host: { data, batch, length, rowStride, column }, view: column === 0 ? tensor : { tensor, column }, owned: tensor };
}

/** An additive padding mask [batch, width]: batch row b masks its first pads[b] keys with `value`. */
function paddingMask(batch: number, width: number, pads: readonly number[], value: number): { host: Float32Array; tensor: Tensor } {
  const host = new Float32Array(batch * width);
  for (let b = 0; b < batch; b++) for (let j = 0; j < (pads[b] ?? 0); j++) host[b * width + j] = value;
  return { host, tensor: Tensor.from(gpu, host, [batch, width]) };
}

interface Case {
  batch: number;
  lq: number;
  lk: number;
  heads: number;
  headDim: number;
  causal?: boolean;
  /** Left padding per batch row (keys masked with float32's lowest value). */
  pads?: readonly number[];
  dtypes?: readonly [DType, DType, DType];
  /** q, k and v as column ranges of one [B, L, 3*H*D + 3] tensor (needs lq == lk and one dtype). */
  fused?: boolean;
  kvLength?: number;
  splitChunk?: number;
  /** Kernels that run this case (default: all); the full vision shape is slow on a CPU adapter. */
  only?: readonly (AttentionKernel | undefined)[];
  /** Every operand offset and row stride a multiple of 4 elements (vec4 loads; the lanes kernel). */
  aligned?: boolean;
}

function describeCase(c: Case): string {
  const d = c.dtypes ?? ['f32', 'f32', 'f32'];
  return `B${c.batch} Lq${c.lq} Lk${c.lk}${c.kvLength ? `/${c.kvLength}` : ''} H${c.heads} D${c.headDim}${c.causal ? ' causal' : ''}${c.pads ? ' padded' : ''}${c.fused ? ' fused' : ''} ${d.join('/')}`;
}

/** References by case: every kernel sees the same inputs, so each is computed once. */
const references = new Map<Case, Float32Array>();

/** Runs `c` with `kernel` and returns the tolerance ratio against the reference (<= 1 passes). */
async function checkCase(c: Case, kernel: AttentionKernel | undefined, seed: number): Promise<number> {
  const [qt, kt, vt] = c.dtypes ?? ['f32', 'f32', 'f32'];
  const width = c.heads * c.headDim;
  let q: Operand, k: Operand, v: Operand;
  const owned: Tensor[] = [];
  // Aligned cases still put the heads at a column and pad the rows, in whole vec4s.
  const [first, pad] = c.aligned ? [4, 4] : [1, 2];
  if (c.fused) {
    const all = makeOperand(c.batch, c.lq, 3 * width, first, pad, qt, seed);
    const at = (column: number): Operand => ({ host: { ...all.host, column }, view: { tensor: all.owned, column }, owned: all.owned });
    [q, k, v] = [at(first), at(first + width), at(first + 2 * width)];
    owned.push(all.owned);
  } else if (c.aligned) {
    q = makeOperand(c.batch, c.lq, width, 0, 4, qt, seed);
    k = makeOperand(c.batch, c.lk, width, 4, 0, kt, seed + 1);
    v = makeOperand(c.batch, c.lk, width, 4, 8, vt, seed + 2);
    owned.push(q.owned, k.owned, v.owned);
  } else {
    q = makeOperand(c.batch, c.lq, width, seed % 3, 1, qt, seed);
    k = makeOperand(c.batch, c.lk, width, (seed + 1) % 3, 2, kt, seed + 1);
    v = makeOperand(c.batch, c.lk, width, (seed + 2) % 3, 0, vt, seed + 2);
    owned.push(q.owned, k.owned, v.owned);
  }
  const kvLength = c.kvLength ?? c.lk;
  const mask = c.pads ? paddingMask(c.batch, kvLength + 3, c.pads, F32_MIN) : null;
  if (mask) owned.push(mask.tensor);
  const options: AttentionOptions = { numHeads: c.heads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim), causal: c.causal, kvLength: c.kvLength, mask: mask?.tensor, kernel, splitChunk: c.splitChunk };
  const out = attention(q.view, k.view, v.view, options);
  owned.push(out);
  expect(out.shape).toEqual([c.batch, c.lq, width]);
  expect(out.dtype).toBe(qt);
  const got = await out.read();
  let ref = references.get(c);
  if (!ref) {
    ref = attentionReference(q.host, k.host, v.host, { ...options, mask: mask ? { data: mask.host, rowStride: kvLength + 3 } : undefined });
    references.set(c, ref);
  }
  for (const t of owned) t.dispose();
  const [atol, rtol] = TOL[qt];
  return toleranceRatio(got, ref, atol, rtol);
}

/** Shapes of the model (vision, Q-Former, OPT prefill/decode) scaled down where they would be slow here. */
const CASES: Case[] = [
  { batch: 1, lq: 257, lk: 257, heads: 16, headDim: 88, fused: true, only: [undefined, 'tiled'] },
  { batch: 1, lq: 257, lk: 257, heads: 1, headDim: 88, fused: true, only: ['rows', 'rows-split', 'split'] },
  { batch: 2, lq: 33, lk: 33, heads: 3, headDim: 88, fused: true, dtypes: ['f16', 'f16', 'f16'] },
  { batch: 1, lq: 32, lk: 257, heads: 3, headDim: 64 },
  { batch: 2, lq: 32, lk: 32, heads: 12, headDim: 64, dtypes: ['f16', 'f32', 'f16'] },
  { batch: 2, lq: 40, lk: 40, heads: 3, headDim: 80, causal: true, pads: [0, 5] },
  { batch: 2, lq: 7, lk: 7, heads: 16, headDim: 80, causal: true, pads: [2, 0], dtypes: ['f32', 'f16', 'f16'] },
  { batch: 2, lq: 1, lk: 1001, heads: 3, headDim: 80, causal: true, pads: [0, 6], dtypes: ['f32', 'f16', 'f16'] },
  { batch: 1, lq: 1, lk: 1001, heads: 1, headDim: 80, kvLength: 700, splitChunk: 64, dtypes: ['f16', 'f16', 'f16'] },
  { batch: 2, lq: 7, lk: 33, heads: 3, headDim: 7, causal: true },
  { batch: 1, lq: 33, lk: 7, heads: 1, headDim: 33 },
  { batch: 2, lq: 1, lk: 1, heads: 3, headDim: 7, dtypes: ['f16', 'f32', 'f32'] },
  { batch: 1, lq: 3, lk: 40, heads: 2, headDim: 128, causal: true, kvLength: 37, splitChunk: 5 },
  { batch: 1, lq: 9, lk: 20, heads: 1, headDim: 1, splitChunk: 3 },
];

/**
 * vec4-aligned shapes (what the model passes: fused qkv columns at multiples of the width) for the lanes
 * kernel, which the default picks on 8-lane software adapters from 8 queries on: a vision layer's 257
 * queries (not a multiple of the 32-query workgroup), head_dim 88 (3 chunks of 32, the last partial),
 * 64 and 128, masks, causal prefill, fewer queries than lanes, mixed f16/f32 operands.
 */
const LANE_CASES: Case[] = [
  { batch: 1, lq: 257, lk: 257, heads: 2, headDim: 88, fused: true, aligned: true },
  { batch: 2, lq: 33, lk: 33, heads: 3, headDim: 88, fused: true, aligned: true, dtypes: ['f16', 'f16', 'f16'] },
  { batch: 1, lq: 32, lk: 257, heads: 3, headDim: 64, aligned: true },
  { batch: 2, lq: 40, lk: 40, heads: 3, headDim: 80, causal: true, pads: [0, 5], aligned: true },
  { batch: 2, lq: 7, lk: 33, heads: 3, headDim: 8, causal: true, aligned: true, dtypes: ['f32', 'f16', 'f16'] },
  { batch: 1, lq: 12, lk: 40, heads: 2, headDim: 128, causal: true, kvLength: 37, aligned: true },
  { batch: 1, lq: 9, lk: 20, heads: 1, headDim: 4, aligned: true },
];

function hasLanes8(): boolean {
  return gpu.caps.subgroups && gpu.caps.subgroupMinSize === 8 && gpu.caps.subgroupMaxSize === 8;
}

describe('attention', () => {
  for (const kernel of [undefined, ...KERNELS, LANES_KERNEL]) {
    it(`${kernel ?? 'default kernel'} matches the reference on model-like and awkward shapes`, async () => {
      if (kernel === LANES_KERNEL && !hasLanes8()) return;
      const cases = kernel === LANES_KERNEL ? LANE_CASES : kernel === undefined ? [...CASES, ...LANE_CASES] : CASES;
      const failures: string[] = [];
      for (const c of cases) {
        if (c.only && !c.only.includes(kernel)) continue;
        // One seed per case whatever the list: the reference is computed once per case.
        const ratio = await checkCase(c, kernel, 100 + [...CASES, ...LANE_CASES].indexOf(c));
        if (!(ratio <= 1)) failures.push(`${describeCase(c)}: error ${ratio.toFixed(2)}x tolerance`);
      }
      expect(failures).toEqual([]);
    });
  }

  it('gives uniform weights, not NaN, to queries whose visible keys are all masked', async () => {
    // Left padding of 3 under a causal mask: queries 0..2 only see padding. With the -Infinity mask and
    // with float32's lowest value both, they average v over their visible keys.
    const [B, L, H, D] = [1, 5, 2, 7];
    const q = Tensor.from(gpu, randn(L * H * D, 1), [B, L, H * D]);
    const vData = randn(L * H * D, 3);
    const k = Tensor.from(gpu, randn(L * H * D, 2), [B, L, H * D]);
    const v = Tensor.from(gpu, vData, [B, L, H * D]);
    for (const value of [-Infinity, F32_MIN]) {
      const mask = paddingMask(B, L, [3], value);
      for (const kernel of KERNELS) {
        const out = attention(q, k, v, { numHeads: H, headDim: D, scale: 0.3, causal: true, mask: mask.tensor, kernel, splitChunk: 2 });
        const got = await out.read();
        out.dispose();
        expect(got.every(Number.isFinite)).toBe(true);
        for (let i = 0; i < 3; i++) {
          for (let c = 0; c < H * D; c++) {
            let mean = 0;
            for (let j = 0; j <= i; j++) mean += vData[j * H * D + c]! / (i + 1);
            expect(Math.abs(got[i * H * D + c]! - mean)).toBeLessThan(1e-5);
          }
        }
      }
      mask.tensor.dispose();
    }
    for (const t of [q, k, v]) t.dispose();
  });

  it('decodes token by token from a preallocated KV cache exactly like a full causal pass', async () => {
    // The cache holds 24 rows; only the first kvLength are filled, the rest is NaN and must never be read.
    const [B, L, H, D, capacity] = [2, 13, 3, 80, 24];
    const width = H * D;
    const qData = randn(B * L * width, 5);
    const kData = asStored(randn(B * L * width, 6), 'f16');
    const vData = asStored(randn(B * L * width, 7), 'f16');
    const pads = [0, 4];
    const q = Tensor.from(gpu, qData, [B, L, width]);
    const k = Tensor.from(gpu, kData, [B, L, width], 'f16');
    const v = Tensor.from(gpu, vData, [B, L, width], 'f16');
    const fullMask = paddingMask(B, L, pads, F32_MIN);
    const opts = { numHeads: H, headDim: D, scale: 1 / Math.sqrt(D), causal: true };
    const full = attention(q, k, v, { ...opts, mask: fullMask.tensor });
    const fullRows = await full.read();
    const kCache = Tensor.empty(gpu, [B, capacity, width], 'f16', { persistent: true });
    const vCache = Tensor.empty(gpu, [B, capacity, width], 'f16', { persistent: true });
    const cacheMask = paddingMask(B, capacity, pads, F32_MIN);
    const cacheHost = (src: Float32Array, filled: number): Float32Array => {
      const out = new Float32Array(B * capacity * width).fill(NaN);
      for (let b = 0; b < B; b++) out.set(src.subarray(b * L * width, (b * L + filled) * width), b * capacity * width);
      return out;
    };
    let worst = 0;
    for (let t = 0; t < L; t++) {
      kCache.write(cacheHost(kData, t + 1));
      vCache.write(cacheHost(vData, t + 1));
      const qStep = new Float32Array(B * width);
      for (let b = 0; b < B; b++) qStep.set(qData.subarray((b * L + t) * width, (b * L + t + 1) * width), b * width);
      const qT = Tensor.from(gpu, qStep, [B, 1, width]);
      for (const kernel of [undefined, ...KERNELS]) {
        const step = attention(qT, kCache, vCache, { ...opts, mask: cacheMask.tensor, kvLength: t + 1, kernel, splitChunk: 4 });
        const got = await step.read();
        step.dispose();
        const want = new Float32Array(B * width);
        for (let b = 0; b < B; b++) want.set(fullRows.subarray((b * L + t) * width, (b * L + t + 1) * width), b * width);
        worst = Math.max(worst, toleranceRatio(got, want, 1e-5, 1e-4));
      }
      qT.dispose();
    }
    expect(worst).toBeLessThanOrEqual(1); // f32 output on both sides: atol 1e-5, rtol 1e-4
    for (const x of [q, k, v, full, kCache, vCache, fullMask.tensor, cacheMask.tensor]) x.dispose();
  });

  it('rejects inconsistent shapes, dtypes and options with clear errors and leaks nothing', async () => {
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const q = Tensor.empty(gpu, [2, 5, 24]);
    const k = Tensor.empty(gpu, [2, 9, 24]);
    const k1 = Tensor.empty(gpu, [1, 9, 24]);
    const ints = Tensor.empty(gpu, [2, 9, 24], 'i32');
    const flat = Tensor.empty(gpu, [10, 24]);
    const opts = { numHeads: 3, headDim: 8, scale: 1 };
    const badMask = Tensor.empty(gpu, [2, 8]);
    const mask4d = Tensor.empty(gpu, [2, 2, 1, 9]);
    expect(() => attention({ tensor: q, column: 1 }, k, k, opts)).toThrow(/rows have 24 columns, too few for column 1 \+ 3 heads x 8 = 25/);
    expect(() => attention(q, k, k, { ...opts, numHeads: 4 })).toThrow(/too few/);
    expect(() => attention(q, k1, k1, opts)).toThrow(/batch mismatch: q has 2, k has 1/);
    expect(() => attention(q, k, k, { ...opts, kvLength: 10 })).toThrow(/kvLength 10 exceeds k's 9 rows/);
    expect(() => attention(q, k, q, { ...opts, kvLength: 6 })).toThrow(/kvLength 6 exceeds v's 5 rows/);
    expect(() => attention(q, k, k, { ...opts, kvLength: 0 })).toThrow(/kvLength must be a positive integer/);
    expect(() => attention(k, q, q, { ...opts, causal: true })).toThrow(/causal attention needs Lq <= kvLength/);
    expect(() => attention(q, k, k, { ...opts, mask: badMask })).toThrow(/mask must be \[2, n\]/);
    expect(() => attention(q, k, k, { ...opts, mask: mask4d })).toThrow(/mask must be \[2, n\]/);
    expect(() => attention(q, k, k, { ...opts, mask: ints })).toThrow(/mask must be f32 or f16/);
    expect(() => attention(q, ints, k, opts)).toThrow(/k must be f32 or f16, got i32/);
    expect(() => attention(flat, k, k, opts)).toThrow(/q must be \[B, L, rowStride\]/);
    expect(() => attention(q, k, k, { ...opts, headDim: 0 })).toThrow(/headDim must be an integer in 1\.\.256/);
    expect(() => attention(q, k, k, { ...opts, headDim: 257, numHeads: 1 })).toThrow(/headDim/);
    expect(() => attention(q, k, k, { ...opts, scale: NaN })).toThrow(/scale must be a finite number/);
    expect(() => attention(q, k, k, { ...opts, kernel: 'split', splitChunk: 0 })).toThrow(/splitChunk must be a positive integer/);
    expect(() => attention(q, k, k, { ...opts, kernel: 'fast' as AttentionKernel })).toThrow(/unknown kernel 'fast'/);
    // The lanes kernel reads vec4s: a head at column 1 is refused (on any adapter), not misread.
    expect(() => attention({ tensor: k, column: 1 }, k, k, { ...opts, numHeads: 2, kernel: 'lanes' })).toThrow(/lanes kernel needs .*multiples of 4/);
    expect(() => attentionProbs({ tensor: q, column: -1 }, k, opts)).toThrow(/column must be a non-negative integer/);
    const gone = Tensor.empty(gpu, [2, 9, 24]);
    gone.dispose();
    expect(() => attention(q, gone, k, opts)).toThrow(/k is a disposed tensor/);
    for (const t of [q, k, k1, ints, flat, badMask, mask4d]) t.dispose();
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });
});

describe('attentionProbs', () => {
  it('matches the reference, rows sum to 1 and causal/out-of-range keys get exactly 0', async () => {
    const cases: Case[] = [
      { batch: 2, lq: 32, lk: 257, heads: 3, headDim: 64, pads: [0, 9] },
      { batch: 1, lq: 7, lk: 33, heads: 2, headDim: 88, causal: true, kvLength: 20, dtypes: ['f16', 'f16', 'f32'] },
      { batch: 1, lq: 1, lk: 1001, heads: 1, headDim: 7 },
    ];
    for (const [n, c] of cases.entries()) {
      const [qt, kt] = c.dtypes ?? ['f32', 'f32'];
      const q = makeOperand(c.batch, c.lq, c.heads * c.headDim, 1, 1, qt, 50 + n);
      const k = makeOperand(c.batch, c.lk, c.heads * c.headDim, 0, 2, kt, 60 + n);
      const kvLength = c.kvLength ?? c.lk;
      const mask = c.pads ? paddingMask(c.batch, kvLength, c.pads, F32_MIN) : null;
      const options = { numHeads: c.heads, headDim: c.headDim, scale: 0.2, causal: c.causal, kvLength: c.kvLength, mask: mask?.tensor };
      const probs = attentionProbs(q.view, k.view, options);
      expect(probs.shape).toEqual([c.batch, c.heads, c.lq, kvLength]);
      expect(probs.dtype).toBe('f32');
      const got = await probs.read();
      const ref = attentionProbsReference(q.host, k.host, { ...options, mask: mask ? { data: mask.host, rowStride: kvLength } : undefined });
      expect(toleranceRatio(got, ref, 1e-6, 1e-4), describeCase(c)).toBeLessThanOrEqual(1);
      for (let r = 0; r < got.length / kvLength; r++) {
        let sum = 0;
        for (let j = 0; j < kvLength; j++) sum += got[r * kvLength + j]!;
        expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
        if (c.causal) {
          const i = r % c.lq;
          for (let j = kvLength - c.lq + i + 1; j < kvLength; j++) expect(got[r * kvLength + j]).toBe(0);
        }
      }
      for (const t of [q.owned, k.owned, probs, mask?.tensor]) t?.dispose();
    }
  });
});

describe('attention memory', () => {
  it('returns to the baseline of live GPU bytes', async () => {
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(baselineLiveBytes);
  });
});
