import type { Gpu } from '../gpu/gpu.js';
import { Tensor, type BoundTensor, type DType } from '../tensor.js';

/**
 * Heads inside a [B, L, rowStride] tensor: head h occupies columns column + h*headDim ... + headDim-1 of
 * each row. This lets the vision tower's fused qkv output [B, 257, 3*1408] feed attention without any
 * copy: q = {tensor: qkv, column: 0}, k = {tensor: qkv, column: 1408}, v = {tensor: qkv, column: 2816}.
 */
export interface HeadsView {
  tensor: Tensor;
  column?: number;
}

/**
 * How the fused attention runs: `rows` (one invocation per query row, registers only: software
 * adapters), `rows-split` (the same over kv chunks, plus a combine pass), `lanes` (rows whose 8-lane
 * subgroups share each K/V row by broadcast: software adapters with 8-lane subgroups, many queries,
 * vec4-aligned operands), `tiled` (flash attention through workgroup memory: GPUs) and `split`
 * (split-KV flash decoding: GPUs, few queries).
 */
export type AttentionKernel = 'rows' | 'rows-split' | 'lanes' | 'tiled' | 'split';

export interface AttentionOptions {
  numHeads: number;
  headDim: number;
  /** Multiplies QK^T (HF: head_dim**-0.5; OPT pre-scales q, then pass 1). */
  scale: number;
  /** Query i of this call sits at absolute position kvLength - Lq + i and sees keys <= it. */
  causal?: boolean;
  /**
   * Additive mask [B, n] (or [B, 1, .., 1, n]) with n >= kvLength, f32 or f16, broadcast over heads and
   * queries; its first kvLength columns are used. Use 0 for "attend" and a large negative value (or
   * -Infinity) for "ignore". Scores are clamped at -3e38, so a query whose visible keys are all masked
   * gets uniform weights over its visible keys (what PyTorch's eager attention gives with the finite
   * float32-min mask HF builds), never NaN.
   */
  mask?: Tensor;
  /** Number of k/v rows to use (a KV cache holds more rows than are filled); default k's L. */
  kvLength?: number;
  /** Forces a kernel variant (tests exercise every variant on any adapter; benchmarks compare them). */
  kernel?: AttentionKernel;
  /** Forces the number of keys per split of the split variants. */
  splitChunk?: number;
  /**
   * Also writes each (query, head)'s log-sum-exp of its scores here ([B, Lq, numHeads, 2] f32: the pair max,
   * log(sum exp(s - max)), whose sum it is; apart, so that rows whose keys are all masked keep their log-sum),
   * which attentionBackward recomputes the probabilities from (the split variants do not write it: one of
   * the others runs instead).
   */
  lse?: Tensor;
}

/** Largest head_dim the kernels take (the private and workgroup arrays are sized from it). */
export const MAX_HEAD_DIM = 256;

export interface HeadsOperand {
  tensor: Tensor;
  batch: number;
  length: number;
  rowStride: number;
  column: number;
}

export interface AttentionPlan {
  gpu: Gpu;
  q: HeadsOperand;
  k: HeadsOperand;
  v: HeadsOperand | null;
  batch: number;
  lq: number;
  kvLength: number;
  heads: number;
  headDim: number;
  scale: number;
  causal: boolean;
  mask: { tensor: Tensor; batchStride: number } | null;
  lse: Tensor | null;
}

const FLOAT_TYPES: readonly DType[] = ['f32', 'f16'];

function isPositiveInteger(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0;
}

function operand(fn: string, name: string, x: Tensor | HeadsView, heads: number, headDim: number): HeadsOperand {
  const view: HeadsView = x instanceof Tensor ? { tensor: x } : x;
  const t = view.tensor;
  const column = view.column ?? 0;
  if (t.disposed) throw new Error(`${fn}: ${name} is a disposed tensor`);
  if (!FLOAT_TYPES.includes(t.dtype)) throw new TypeError(`${fn}: ${name} must be f32 or f16, got ${t.dtype}`);
  if (t.ndim !== 3) throw new RangeError(`${fn}: ${name} must be [B, L, rowStride], got [${t.shape.join(', ')}]`);
  if (!Number.isInteger(column) || column < 0) throw new RangeError(`${fn}: ${name}.column must be a non-negative integer, got ${column}`);
  const [batch, length, rowStride] = t.shape as [number, number, number];
  if (column + heads * headDim > rowStride) {
    throw new RangeError(
      `${fn}: ${name} rows have ${rowStride} columns, too few for column ${column} + ${heads} heads x ${headDim} = ${column + heads * headDim}`,
    );
  }
  return { tensor: t, batch, length, rowStride, column };
}

/** Validates the arguments of attention/attentionProbs and resolves their views; throws clear errors. */
export function planAttention(
  fn: string,
  qIn: Tensor | HeadsView,
  kIn: Tensor | HeadsView,
  vIn: Tensor | HeadsView | null,
  options: AttentionOptions,
): AttentionPlan {
  const { numHeads: heads, headDim, scale } = options;
  if (!isPositiveInteger(heads)) throw new RangeError(`${fn}: numHeads must be a positive integer, got ${heads}`);
  if (!isPositiveInteger(headDim) || headDim > MAX_HEAD_DIM) {
    throw new RangeError(`${fn}: headDim must be an integer in 1..${MAX_HEAD_DIM}, got ${headDim}`);
  }
  if (typeof scale !== 'number' || !Number.isFinite(scale)) throw new RangeError(`${fn}: scale must be a finite number, got ${scale}`);
  const q = operand(fn, 'q', qIn, heads, headDim);
  const k = operand(fn, 'k', kIn, heads, headDim);
  const v = vIn === null ? null : operand(fn, 'v', vIn, heads, headDim);
  const gpu = q.tensor.gpu;
  for (const [name, o] of [['k', k], ['v', v]] as const) {
    if (!o) continue;
    if (o.tensor.gpu !== gpu) throw new Error(`${fn}: q and ${name} live on different devices`);
    if (o.batch !== q.batch) throw new RangeError(`${fn}: batch mismatch: q has ${q.batch}, ${name} has ${o.batch}`);
  }
  const kvLength = options.kvLength ?? k.length;
  if (!Number.isInteger(kvLength) || kvLength < 1) throw new RangeError(`${fn}: kvLength must be a positive integer, got ${kvLength}`);
  if (kvLength > k.length) throw new RangeError(`${fn}: kvLength ${kvLength} exceeds k's ${k.length} rows`);
  if (v && kvLength > v.length) throw new RangeError(`${fn}: kvLength ${kvLength} exceeds v's ${v.length} rows`);
  const causal = options.causal === true;
  if (causal && q.length > kvLength) {
    throw new RangeError(`${fn}: causal attention needs Lq <= kvLength (queries are the last Lq positions), got Lq ${q.length} > ${kvLength}`);
  }
  const lse = options.lse ?? null;
  if (lse) {
    if (lse.disposed) throw new Error(`${fn}: lse is a disposed tensor`);
    if (lse.gpu !== gpu) throw new Error(`${fn}: q and lse live on different devices`);
    if (lse.dtype !== 'f32' || lse.size !== q.batch * q.length * heads * 2) {
      throw new RangeError(`${fn}: lse must be f32 [${q.batch}, ${q.length}, ${heads}, 2], got ${lse}`);
    }
  }
  return { gpu, q, k, v, batch: q.batch, lq: q.length, kvLength, heads, headDim, scale, causal, mask: planMask(fn, options.mask, q.batch, kvLength, gpu), lse };
}

function planMask(fn: string, mask: Tensor | undefined, batch: number, kvLength: number, gpu: Gpu): AttentionPlan['mask'] {
  if (mask === undefined) return null;
  if (mask.disposed) throw new Error(`${fn}: mask is a disposed tensor`);
  if (mask.gpu !== gpu) throw new Error(`${fn}: q and mask live on different devices`);
  if (!FLOAT_TYPES.includes(mask.dtype)) throw new TypeError(`${fn}: mask must be f32 or f16, got ${mask.dtype}`);
  const s = mask.shape;
  const width = s[s.length - 1] ?? 0;
  const ok = s.length >= 2 && s[0] === batch && s.slice(1, -1).every((d) => d === 1) && width >= kvLength;
  if (!ok) {
    throw new RangeError(`${fn}: mask must be [${batch}, n] (or [${batch}, 1, .., 1, n]) with n >= kvLength ${kvLength}, got [${s.join(', ')}]`);
  }
  return { tensor: mask, batchStride: width };
}

export interface BoundAttention {
  q: BoundTensor;
  k: BoundTensor;
  v: BoundTensor | null;
  mask: BoundTensor | null;
  lse: BoundTensor | null;
}

export function bindAttention(plan: AttentionPlan): BoundAttention {
  return {
    q: plan.q.tensor.bind(),
    k: plan.k.tensor.bind(),
    v: plan.v ? plan.v.tensor.bind() : null,
    mask: plan.mask ? plan.mask.tensor.bind() : null,
    lse: plan.lse ? plan.lse.bind() : null,
  };
}

/** Element types of the operands, as shader defines (`F16` whenever one of them is f16; no `VT` without v). */
export function operandDefines(plan: AttentionPlan): Record<string, string | boolean> {
  const types: DType[] = [plan.q.tensor.dtype, plan.k.tensor.dtype];
  const defines: Record<string, string | boolean> = { QT: plan.q.tensor.dtype, KT: plan.k.tensor.dtype, MASK: plan.mask !== null };
  if (plan.v) {
    defines.VT = plan.v.tensor.dtype;
    types.push(plan.v.tensor.dtype);
  }
  if (plan.mask) {
    defines.MT = plan.mask.tensor.dtype;
    types.push(plan.mask.tensor.dtype);
  }
  defines.F16 = types.includes('f16');
  if (plan.lse) {
    defines.LSE = true;
    // After out, which follows q, k, then v and the mask where present.
    defines.LSE_BINDING = String(4 + (plan.v ? 1 : 0) + (plan.mask ? 1 : 0));
  }
  return defines;
}
