/**
 * Differentiable versions of the kernels (torch.nn.functional's role): the same signatures, the same kernels,
 * and, when an input requires a gradient (and grad mode is on), a node on the tape with the backward pass
 * from the kernels' *-backward twins. With nothing trainable they are the kernels themselves. The model files
 * call these, and so can a researcher's own modules (docs/research.md), which then train without further code.
 */
import { attention as attentionKernel, attentionBackward, type AttentionOptions, type HeadsView } from '../kernels/attention.js';
import { copy } from '../kernels/copy.js';
import { crossEntropy, crossEntropyBackward, IGNORE_INDEX, shiftLabels } from '../kernels/cross-entropy.js';
import { dropout as dropoutKernel } from '../kernels/dropout.js';
import { add as addKernel, gelu as geluKernel, geluBackward, mul as mulKernel, relu as reluKernel, reluBackward } from '../kernels/elementwise.js';
import { embedding as embeddingKernel, embeddingBackward } from '../kernels/embedding.js';
import { zeros } from '../kernels/fill.js';
import { layerNorm as layerNormKernel, layerNormBackward, layerNormParamsBackward, type LayerNormOptions } from '../kernels/layernorm.js';
import { linear as linearKernel, type LinearOptions } from '../kernels/linear.js';
import { linearBiasGrad, linearInputGrad, linearWeightGrad } from '../kernels/linear-backward.js';
import { sumRows } from '../kernels/reduce.js';
import { concatRows as concatRowsKernel } from '../kernels/rows.js';
import { scatterRows as scatterRowsKernel } from '../kernels/scatter.js';
import { keepWeight, QuantizedTensor, weightTensors, type Weight } from '../quant/quantized-tensor.js';
import { Tensor, type DType } from '../tensor.js';
import { nextSeed } from './random.js';
import { record, recording, requiresGrad, save, untracked } from './tape.js';

/**
 * y = act(x W^T + b) + residual, differentiable in x, W, b and the residual. A quantized W (docs/quantization.md)
 * is always frozen (Parameter refuses requires_grad on one): it passes the gradient to x, dX = dY W' with
 * W' = q * s read from the codes by the same kernels (linearInputGrad), and computes none for itself.
 */
export function linear(x: Tensor, weight: Weight, bias?: Tensor | null, options: LinearOptions = {}): Tensor {
  const b = bias ?? null;
  const residual = options.residual ?? null;
  const ln = options.layerNorm;
  // The weight's own tensor for the tape: a quantized one never requires a gradient, so its codes stand for it.
  const w = weight instanceof QuantizedTensor ? weight.codes : weight;
  if (ln && recording(x, w, b, residual, ln.weight, ln.bias)) {
    // Recorded as the two ops the prologue fuses: the LayerNorm's own node saves its statistics for backward.
    const normed = layerNorm(x, ln.weight, ln.bias, ln.eps);
    try {
      return linear(normed, weight, b, { ...options, layerNorm: undefined });
    } finally {
      normed.dispose(); // the nodes hold their own handles on what they saved
    }
  }
  if (!recording(x, w, b, residual)) return linearKernel(x, weight, b, options);
  if (options.out) throw new Error('linear: writing into `out` cannot be differentiated; leave it out while training');
  const act = options.activation ?? 'none';
  const [needX, needW] = [requiresGrad(x), requiresGrad(w)];
  // GELU's gradient needs its input and ReLU's its output, so an activation followed by a residual is unfused.
  let z: Tensor | null = null;
  let a: Tensor | null = null;
  const y = untracked(() => {
    if (act === 'none') return linearKernel(x, weight, b, { residual: residual ?? undefined });
    if (act === 'gelu') {
      z = linearKernel(x, weight, b);
      a = geluKernel(z);
    } else {
      a = linearKernel(x, weight, b, { activation: act });
    }
    if (!residual) return a;
    const sum = addKernel(a, residual);
    if (act === 'gelu') a.dispose();
    return sum;
  });
  const sx = needW ? save(x) : null;
  const sw = needX ? saveWeight(weight) : null;
  const sz = z ? save(z) : null;
  const sa = act === 'relu' ? save(a!) : null;
  if (z) (z as Tensor).dispose();
  const inputs = [x, w, ...(b ? [b] : []), ...(residual ? [residual] : [])];
  const [needB, needR] = [b !== null && requiresGrad(b), residual !== null && requiresGrad(residual)];
  record(
    `linear${act === 'none' ? '' : `+${act}`}`,
    inputs,
    [y],
    ([g]) => {
      const dz = sz ? geluBackward(sz, g!) : sa ? reluBackward(sa, g!) : g!;
      const grads: (Tensor | null)[] = [needX ? linearInputGrad(dz, sw!) : null, needW ? linearWeightGrad(dz, sx!) : null];
      if (b) grads.push(needB ? linearBiasGrad(dz) : null);
      if (residual) grads.push(needR ? g! : null);
      return grads;
    },
    [sx, ...(sw ? weightTensors(sw) : []), sz, sa].filter((t): t is Tensor => t !== null),
  );
  return y;
}

/** save() for either kind of weight. */
function saveWeight(weight: Weight): Weight {
  return weight instanceof QuantizedTensor ? keepWeight(untracked(() => weight.ref())) : save(weight);
}

/** LayerNorm(x [+ residual]) over the last dim, differentiable in x, the residual, weight and bias. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number, options: LayerNormOptions = {}): Tensor {
  const residual = options.residual ?? null;
  if (!recording(x, weight, bias, residual)) return layerNormKernel(x, weight, bias, eps, options);
  const rows = x.size / x.dim(-1);
  const stats = Tensor.empty(x.gpu, [rows, 2]);
  let y: Tensor;
  try {
    y = untracked(() => layerNormKernel(x, weight, bias, eps, { residual: residual ?? undefined, stats }));
  } catch (e) {
    stats.dispose();
    throw e;
  }
  const [needX, needW, needB, needR] = [requiresGrad(x), requiresGrad(weight), requiresGrad(bias), residual !== null && requiresGrad(residual)];
  const saved = { x: save(x), w: save(weight), r: residual ? save(residual) : undefined, stats: save(stats) };
  stats.dispose();
  record(
    'layerNorm',
    [x, weight, bias, ...(residual ? [residual] : [])],
    [y],
    ([g]) => {
      const dx = needX || needR ? layerNormBackward(g!, saved.x, saved.w, saved.stats, { residual: saved.r }) : null;
      let dw: Tensor | null = null;
      let db: Tensor | null = null;
      if (needW || needB) {
        dw = zeros(g!.gpu, [x.dim(-1)]);
        db = zeros(g!.gpu, [x.dim(-1)]);
        layerNormParamsBackward(g!, saved.x, saved.stats, dw, db, { residual: saved.r });
      }
      const grads = [needX ? dx : null, needW ? dw : null, needB ? db : null];
      if (residual) grads.push(needR ? dx : null);
      return grads;
    },
    [saved.x, saved.w, saved.stats, ...(saved.r ? [saved.r] : [])],
  );
  return y;
}

function headsTensor(x: Tensor | HeadsView): Tensor {
  return x instanceof Tensor ? x : x.tensor;
}

function column(x: Tensor | HeadsView): number {
  return x instanceof Tensor ? 0 : (x.column ?? 0);
}

/**
 * Fused attention, differentiable in q, k and v (which may be views of one tensor): the forward saves the
 * log-sum-exp and the backward pass recomputes the probabilities from it (attentionBackward).
 */
export function attention(q: Tensor | HeadsView, k: Tensor | HeadsView, v: Tensor | HeadsView, options: AttentionOptions): Tensor {
  const tensors = [headsTensor(q), headsTensor(k), headsTensor(v)];
  if (!recording(...tensors)) return attentionKernel(q, k, v, options);
  const distinct = [...new Set(tensors)];
  const [B, Lq] = tensors[0]!.shape as [number, number];
  const lse = Tensor.empty(tensors[0]!.gpu, [B, Lq, options.numHeads, 2]);
  // The split-KV kernels do not save the log-sum-exp: let the choice fall to one that does.
  const kernel = options.kernel === 'split' || options.kernel === 'rows-split' ? undefined : options.kernel;
  let out: Tensor;
  try {
    out = untracked(() => attentionKernel(q, k, v, { ...options, kernel, lse }));
  } catch (e) {
    lse.dispose();
    throw e;
  }
  const saved = distinct.map(save);
  const sOut = save(out);
  const sLse = save(lse);
  lse.dispose();
  const mask = options.mask ? save(options.mask) : null;
  const needs = distinct.map(requiresGrad);
  const cols = [column(q), column(k), column(v)];
  const views = tensors.map((t, i) => ({ tensor: saved[distinct.indexOf(t)]!, column: cols[i]! }));
  const backOptions: AttentionOptions = { numHeads: options.numHeads, headDim: options.headDim, scale: options.scale, causal: options.causal, kvLength: options.kvLength, mask: mask ?? undefined };
  record(
    'attention',
    distinct,
    [out],
    ([g]) => {
      const gradOf = distinct.map((t) => zeros(t.gpu, t.shape));
      const gv = tensors.map((t, i) => ({ tensor: gradOf[distinct.indexOf(t)]!, column: cols[i]! }));
      attentionBackward(views[0]!, views[1]!, views[2]!, sOut, g!, sLse, { dq: gv[0]!, dk: gv[1]!, dv: gv[2]! }, backOptions);
      return gradOf.map((t, i) => (needs[i] ? t : null));
    },
    [...saved, sOut, sLse, ...(mask ? [mask] : [])],
  );
  return out;
}

/** The gradient of an operand broadcast along leading dims: summed over them, in its own shape. */
function reduceTo(g: Tensor, like: { shape: readonly number[]; size: number }): Tensor {
  if (like.size === g.size) return g.reshape(like.shape);
  return sumRows(g.reshape([g.size / like.size, like.size])).reshape(like.shape);
}

/** a + b (b broadcast along a's leading dims), differentiable in both. */
export function add(a: Tensor, b: Tensor): Tensor {
  if (!recording(a, b)) return addKernel(a, b);
  const y = untracked(() => addKernel(a, b));
  const [needA, needB] = [requiresGrad(a), requiresGrad(b)];
  const bLike = { shape: [...b.shape], size: b.size };
  record('add', [a, b], [y], ([g]) => [needA ? g! : null, needB ? reduceTo(g!, bLike) : null]);
  return y;
}

/** a * b (b broadcast as for add) or a * scalar, differentiable in the tensors. */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') {
    if (!recording(a)) return mulKernel(a, b);
    const y = untracked(() => mulKernel(a, b));
    record('mul', [a], [y], ([g]) => [mulKernel(g!, b)]);
    return y;
  }
  if (!recording(a, b)) return mulKernel(a, b);
  const y = untracked(() => mulKernel(a, b));
  const [needA, needB] = [requiresGrad(a), requiresGrad(b)];
  const sa = needB ? save(a) : null;
  const sb = needA ? save(b) : null;
  const bLike = { shape: [...b.shape], size: b.size };
  record(
    'mul',
    [a, b],
    [y],
    ([g]) => [needA ? mulKernel(g!, sb!) : null, needB ? reduceTo(mulKernel(g!, sa!), bLike) : null],
    [sa, sb].filter((t): t is Tensor => t !== null),
  );
  return y;
}

/** Exact (erf) GELU, differentiable. */
export function gelu(x: Tensor): Tensor {
  if (!recording(x)) return geluKernel(x);
  const y = untracked(() => geluKernel(x));
  const sx = save(x);
  record('gelu', [x], [y], ([g]) => [geluBackward(sx, g!)], [sx]);
  return y;
}

/** max(x, 0), differentiable (the gradient reads the output). */
export function relu(x: Tensor): Tensor {
  if (!recording(x)) return reluKernel(x);
  const y = untracked(() => reluKernel(x));
  const sy = save(y);
  record('relu', [x], [y], ([g]) => [reluBackward(sy, g!)], [sy]);
  return y;
}

/** Row gather (nn.Embedding), differentiable in the table: repeated ids add up. */
export function embedding(ids: Tensor, table: Tensor, options: { outDtype?: DType } = {}): Tensor {
  if (!recording(table)) return embeddingKernel(ids, table, options);
  const y = untracked(() => embeddingKernel(ids, table, options));
  const sIds = save(ids);
  const shape = [...table.shape];
  record(
    'embedding',
    [table],
    [y],
    ([g]) => {
      const dt = zeros(g!.gpu, shape);
      embeddingBackward(sIds, g!, dt);
      return [dt];
    },
    [sIds],
  );
  return y;
}

/** Row indices of a [B, L, D] tensor's rows from..from+n of every batch, as i32 ids into its [B*L, D] view. */
function rowIds(tensor: Tensor, B: number, L: number, from: number, n: number): Tensor {
  return Tensor.from(tensor.gpu, Int32Array.from({ length: B * n }, (_, i) => Math.floor(i / n) * L + from + (i % n)), [B * n], 'i32');
}

/** [B, L1, D] ++ [B, L2, D] along dim 1, differentiable in both. */
export function concatRows(a: Tensor, b: Tensor): Tensor {
  if (!recording(a, b)) return concatRowsKernel(a, b);
  const y = untracked(() => concatRowsKernel(a, b));
  const [B, L1, D] = a.shape as [number, number, number];
  const L2 = b.dim(1);
  const [needA, needB] = [requiresGrad(a), requiresGrad(b)];
  const part = (g: Tensor, from: number, n: number): Tensor => {
    const ids = rowIds(g, B, L1 + L2, from, n);
    return embeddingKernel(ids, g.reshape([B * (L1 + L2), D])).reshape([B, n, D]);
  };
  record('concatRows', [a, b], [y], ([g]) => [needA ? part(g!, 0, L1) : null, needB ? part(g!, L1, L2) : null]);
  return y;
}

/**
 * dst[rows[i]] = src[i] (BLIP-2's masked_scatter of the image features into the token embeddings), returned as a
 * new handle; differentiable in src (its gradient gathers those rows back) and in dst (the other rows). dst is
 * written in place unless it requires a gradient itself (trainable token embeddings), when a copy is.
 */
export function scatterRows(dst: Tensor, src: Tensor, rows: Tensor): Tensor {
  const rec = recording(src, dst);
  const needDst = rec && requiresGrad(dst);
  const out = untracked(() => {
    const target = needDst ? copy(dst) : dst.ref();
    scatterRowsKernel(target, src, rows);
    return target;
  });
  if (!rec) return out;
  const sRows = save(rows);
  const needSrc = requiresGrad(src);
  record(
    'scatterRows',
    [src, dst],
    [out],
    ([g]) => {
      let gDst: Tensor | null = null;
      if (needDst) {
        gDst = copy(g!);
        scatterRowsKernel(gDst, zeros(g!.gpu, [sRows.size, g!.dim(-1)]), sRows);
      }
      return [needSrc ? embeddingKernel(sRows, g!) : null, gDst];
    },
    [sRows],
  );
  return out;
}

/** Dropout with probability p (identity when p is 0 or `training` is false); the mask replays from its seed. */
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!training || p === 0) return x.ref();
  const seed = nextSeed();
  const y = untracked(() => dropoutKernel(x, p, seed));
  if (recording(x)) record('dropout', [x], [y], ([g]) => [dropoutKernel(g!, p, seed)]);
  return y;
}

export interface CausalLMLossOutput {
  loss: Tensor;
  /** Label positions that count (not -100 after the shift). */
  count: number;
}

/**
 * HF's causal-LM loss (ForCausalLMLoss): logits [B, L, V] against labels [B, L] shifted by one position, -100
 * ignored, mean over the rest; differentiable in the logits.
 */
export function causalLMLoss(logits: Tensor, labels: readonly (readonly number[])[], ignoreIndex = IGNORE_INDEX): CausalLMLossOutput {
  const [B, L, V] = logits.shape as [number, number, number];
  if (labels.length !== B || labels.some((r) => r.length !== L)) throw new RangeError(`labels must be [${B}, ${L}] like the logits' tokens`);
  const host = shiftLabels(labels, ignoreIndex);
  const targets = Tensor.from(logits.gpu, host, [B * L], 'i32');
  const flat = untracked(() => logits.reshape([B * L, V]));
  try {
    const out = crossEntropy(flat, targets, host, ignoreIndex);
    if (!recording(logits)) {
      out.stats.dispose();
      return { loss: out.loss, count: out.count };
    }
    const saved = { logits: save(flat), targets: save(targets), stats: save(out.stats) };
    out.stats.dispose();
    const kept = { ...out, stats: saved.stats };
    record(
      'causalLMLoss',
      [logits],
      [out.loss],
      ([g]) => [crossEntropyBackward(saved.logits, saved.targets, kept, g!, ignoreIndex).reshape([B, L, V])],
      [saved.logits, saved.targets, saved.stats],
    );
    return { loss: out.loss, count: out.count };
  } finally {
    targets.dispose();
    flat.dispose();
  }
}
