/**
 * The attention backward pass (wgsl/attention_backward*.wgsl): gradients of q, k and v from dO, recomputing the
 * probabilities from the log-sum-exp the forward saved (`attention(..., { lse })`).
 */
import { uniforms } from '../gpu/uniforms.js';
import { Tensor } from '../tensor.js';
import { bindAttention, operandDefines, planAttention, type AttentionOptions, type AttentionPlan, type HeadsOperand, type HeadsView } from './attention-plan.js';
import { grid1d } from './grid.js';

/** Where the gradients go: views of f32 tensors shaped like their operands (same rows, row stride and column). */
export interface AttentionGrads {
  dq: Tensor | HeadsView;
  dk: Tensor | HeadsView;
  dv: Tensor | HeadsView;
}

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

function gradView(name: string, g: Tensor | HeadsView, like: HeadsOperand, plan: AttentionPlan): { tensor: Tensor; column: number } {
  const view = g instanceof Tensor ? { tensor: g, column: 0 } : { tensor: g.tensor, column: g.column ?? 0 };
  const t = view.tensor;
  if (t.disposed) throw new Error(`attentionBackward: ${name} is a disposed tensor`);
  if (t.gpu !== plan.gpu) throw new Error(`attentionBackward: ${name} lives on another device`);
  if (t.dtype !== 'f32') throw new TypeError(`attentionBackward: ${name} must be f32, got ${t}`);
  const [b, l, stride] = t.shape as [number, number, number];
  if (t.ndim !== 3 || b !== like.batch || l !== like.length || stride !== like.rowStride || view.column !== like.column) {
    throw new RangeError(`attentionBackward: ${name} ${t} (column ${view.column}) must be shaped like its operand ${like.tensor} (column ${like.column})`);
  }
  return view;
}

/**
 * Adds the gradients of `out = attention(q, k, v, options)` to grads.dq, dk and dv, given dOut (the gradient of
 * out, [B, Lq, heads*headDim]) and the forward's log-sum-exp `lse` ([B, Lq, heads, 2] f32). The options must be
 * those of the forward (scale, causal, mask, kvLength); the grads must be zeroed (or hold gradients to add to).
 */
export function attentionBackward(
  q: Tensor | HeadsView,
  k: Tensor | HeadsView,
  v: Tensor | HeadsView,
  out: Tensor,
  dOut: Tensor,
  lse: Tensor,
  grads: AttentionGrads,
  options: AttentionOptions,
): void {
  const plan = planAttention('attentionBackward', q, k, v, { ...options, lse });
  const gpu = plan.gpu;
  const rows = plan.batch * plan.lq * plan.heads;
  const width = plan.heads * plan.headDim;
  for (const [name, t] of [['out', out], ['dOut', dOut]] as const) {
    if (t.gpu !== gpu) throw new Error(`attentionBackward: ${name} lives on another device`);
    if ((t.dtype !== 'f32' && t.dtype !== 'f16') || t.size !== plan.batch * plan.lq * width) {
      throw new RangeError(`attentionBackward: ${name} must be [${plan.batch}, ${plan.lq}, ${width}] f32 or f16, got ${t}`);
    }
  }
  const dq = gradView('dq', grads.dq, plan.q, plan);
  const dk = gradView('dk', grads.dk, plan.k, plan);
  const dv = gradView('dv', grads.dv, plan.v!, plan);
  for (const g of [dq, dk, dv]) {
    for (const t of [plan.q.tensor, plan.k.tensor, plan.v!.tensor, out, dOut, lse]) {
      if (g.tensor.buffer === t.buffer) throw new Error('attentionBackward: a gradient must not share storage with an input');
    }
  }

  const stats = Tensor.empty(gpu, [rows, 3]);
  try {
    // delta = dO . O, packed with the log-sum-exp.
    const [bo, bg, bl, bs] = [out.bind(), dOut.bind(), lse.bind(), stats.bind()];
    const gp = grid1d(gpu, rows, 64);
    gpu.dispatch({
      label: 'attention_backward_prep',
      pipeline: gpu.pipeline('attention_backward_prep', { OT: out.dtype, GT: dOut.dtype, F16: out.dtype === 'f16' || dOut.dtype === 'f16' }),
      uniforms: uniforms().u32(rows, plan.headDim, bo.elementOffset, bg.elementOffset, bl.elementOffset, bs.elementOffset, gp.rowStride, 0).build(),
      buffers: [bo.binding, bg.binding, bl.binding, bs.binding],
      workgroups: gp.workgroups,
    });

    const b = bindAttention({ ...plan, lse: null });
    const vec4 = [plan.headDim, b.q.elementOffset + plan.q.column, plan.q.rowStride, b.k.elementOffset + plan.k.column, plan.k.rowStride, b.v!.elementOffset + plan.v!.column, plan.v!.rowStride].every(
      (x) => x % 4 === 0,
    );
    const base: Record<string, string | number | boolean> = { ...operandDefines({ ...plan, lse: null }), OT: 'f32', GT: dOut.dtype, DP: roundUp(plan.headDim, 8), VEC4: vec4 };
    base.F16 = base.F16 === true || dOut.dtype === 'f16';
    const outBinding = 4 + (plan.mask ? 1 : 0);
    const wg = gpu.caps.isSoftware ? 32 : 64;
    base.WG = wg;
    const common = (o: { tensor: Tensor; column: number }, o2: { tensor: Tensor; column: number } | null, invocations: number) => {
      const bOut = o.tensor.bind();
      const bOut2 = o2?.tensor.bind();
      const g = grid1d(gpu, invocations, wg);
      const { q: pq, k: pk, v: pv } = plan;
      const u = uniforms()
        .u32(plan.batch, plan.lq, plan.kvLength, plan.heads, plan.headDim, plan.causal ? 1 : 0)
        .f32(plan.scale)
        .u32(plan.kvLength, 1, g.rowStride)
        .u32(b.q.elementOffset + pq.column, pq.rowStride, pq.length * pq.rowStride)
        .u32(b.k.elementOffset + pk.column, pk.rowStride, pk.length * pk.rowStride)
        .u32(b.v!.elementOffset + pv!.column, pv!.rowStride, pv!.length * pv!.rowStride)
        .u32(b.mask?.elementOffset ?? 0, plan.mask?.batchStride ?? 0, bOut.elementOffset + o.column)
        .u32(0, bOut2 ? bOut2.elementOffset + o2!.column : 0, bg.elementOffset, bs.elementOffset)
        .build();
      const inputs = [b.q.binding, b.k.binding, b.v!.binding, ...(b.mask ? [b.mask.binding] : [])];
      return { u, inputs, bOut, bOut2, g };
    };
    {
      const c = common(dq, null, rows);
      gpu.dispatch({
        label: 'attention_backward(dq)',
        pipeline: gpu.pipeline('attention_backward', { ...base, DKV: false, DO_BINDING: String(outBinding + 1), STATS_BINDING: String(outBinding + 2) }),
        uniforms: c.u,
        buffers: [...c.inputs, c.bOut.binding, bg.binding, bs.binding],
        workgroups: c.g.workgroups,
      });
    }
    {
      const c = common(dk, dv, plan.batch * plan.kvLength * plan.heads);
      // One tensor for both (OPT's fused projection): one binding, dv's offset taken from dk's binding start.
      const shared = dk.tensor.buffer === dv.tensor.buffer;
      if (shared && c.bOut.binding.offset !== c.bOut2!.binding.offset) throw new Error('attentionBackward: dk and dv share a buffer but not a binding');
      const extra = shared ? 0 : 1;
      gpu.dispatch({
        label: 'attention_backward(dk, dv)',
        pipeline: gpu.pipeline('attention_backward', {
          ...base,
          DKV: true,
          DV_IN_OUT: shared,
          DV_BINDING: String(outBinding + 1),
          DO_BINDING: String(outBinding + 1 + extra),
          STATS_BINDING: String(outBinding + 2 + extra),
        }),
        uniforms: c.u,
        buffers: [...c.inputs, c.bOut.binding, ...(shared ? [] : [c.bOut2!.binding]), bg.binding, bs.binding],
        workgroups: c.g.workgroups,
      });
    }
  } finally {
    stats.dispose();
  }
}
