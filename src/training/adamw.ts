/**
 * torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ over Parameters, on the device: decoupled weight decay,
 * bias correction, f32 moments; the step never waits for the host.
 */
import { mul } from '../kernels/elementwise.js';
import { zeros } from '../kernels/fill.js';
import { adamwStep, gradNorm } from '../kernels/optimizer.js';
import type { Gpu } from '../gpu/gpu.js';
import type { Parameter } from '../model/module.js';
import { keep, Tensor } from '../tensor.js';

export interface AdamWOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 1e-2 (torch's AdamW default). */
  weight_decay?: number;
}

interface ParamState {
  step: number;
  exp_avg: Tensor;
  exp_avg_sq: Tensor;
}

type ParamsArg = Iterable<Parameter> | Iterable<[string, Parameter]>;

function paramsOf(params: ParamsArg): Parameter[] {
  const list = [...params].map((p) => (Array.isArray(p) ? p[1] : p));
  if (list.length === 0) throw new Error('the optimizer got an empty parameter list');
  for (const p of list) {
    if (!p.requires_grad) throw new Error(`a parameter of shape [${p.shape.join(', ')}] is not trainable (requires_grad is off)`);
  }
  return list;
}

/**
 * Scales every gradient so that their global 2-norm is at most maxNorm (torch's clip_grad_norm_: coefficient
 * min(1, maxNorm / (norm + 1e-6))), in place; returns the norm before clipping as a [1] f32 tensor (read it
 * when convenient: nothing waits for it).
 */
export function clipGradNorm_(params: ParamsArg, maxNorm: number): Tensor {
  const list = [...params].map((p) => (Array.isArray(p) ? p[1] : p)).filter((p) => p.grad !== null);
  if (list.length === 0) throw new Error('clipGradNorm_: no parameter has a gradient');
  const gpu = list[0]!.grad!.gpu;
  const norm = gradNorm(gpu, list.map((p) => p.grad!), maxNorm);
  try {
    const coef = norm.rows(1, 1);
    for (const p of list) {
      const scaled = keep(mul(p.grad!, coef));
      p.grad!.dispose();
      p.grad = scaled;
    }
    coef.dispose();
    return norm.rows(0, 1);
  } finally {
    norm.dispose();
  }
}

/** AdamW with torch's semantics over `params` (Parameters, or [name, Parameter] pairs). */
export class AdamW {
  readonly params: Parameter[];
  lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weight_decay: number;
  readonly state = new Map<Parameter, ParamState>();
  private unit: Tensor | null = null;

  constructor(params: ParamsArg, options: AdamWOptions = {}) {
    this.params = paramsOf(params);
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weight_decay = options.weight_decay ?? 1e-2;
    const [b1, b2] = this.betas;
    if (!(this.lr >= 0) || !(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1) || !(this.eps >= 0) || !(this.weight_decay >= 0)) {
      throw new RangeError(`AdamW: invalid hyper-parameters ${JSON.stringify({ lr: this.lr, betas: this.betas, eps: this.eps, weight_decay: this.weight_decay })}`);
    }
  }

  private get gpu(): Gpu {
    return this.params[0]!.value.gpu;
  }

  /** One update of every parameter that has a gradient (others are skipped, as torch skips grad None). */
  step(): void {
    const gpu = this.gpu;
    if (!this.unit) {
      this.unit = keep(Tensor.from(gpu, [0, 1], [2]));
    }
    for (const p of this.params) {
      if (!p.grad) continue;
      let s = this.state.get(p);
      if (!s) {
        s = { step: 0, exp_avg: keep(zeros(gpu, p.shape)), exp_avg_sq: keep(zeros(gpu, p.shape)) };
        this.state.set(p, s);
      }
      s.step++;
      adamwStep(p.value, p.grad, s.exp_avg, s.exp_avg_sq, this.unit, {
        lr: this.lr,
        beta1: this.betas[0],
        beta2: this.betas[1],
        eps: this.eps,
        weightDecay: this.weight_decay,
        step: s.step,
      });
    }
  }

  /** Drops every gradient (set_to_none). */
  zeroGrad(): void {
    for (const p of this.params) p.zero_grad();
  }

  /** The moments and step counts, in this.params order, for saving (see training/checkpoint.ts). */
  stateTensors(): { step: number; exp_avg: Tensor; exp_avg_sq: Tensor }[] {
    return this.params.map((p) => {
      const s = this.state.get(p);
      if (!s) throw new Error('AdamW: no state to save before the first step');
      return s;
    });
  }

  /** Restores moments and step counts saved by stateTensors (host arrays in this.params order). */
  loadState(states: readonly { step: number; exp_avg: Float32Array; exp_avg_sq: Float32Array }[]): void {
    if (states.length !== this.params.length) throw new Error(`AdamW: ${states.length} saved states for ${this.params.length} parameters`);
    const gpu = this.gpu;
    this.params.forEach((p, i) => {
      const st = states[i]!;
      const n = p.value.size;
      if (st.exp_avg.length !== n || st.exp_avg_sq.length !== n) throw new Error(`AdamW: saved state ${i} does not match a parameter of ${n} elements`);
      this.state.get(p)?.exp_avg.dispose();
      this.state.get(p)?.exp_avg_sq.dispose();
      this.state.set(p, { step: st.step, exp_avg: keep(Tensor.from(gpu, st.exp_avg, p.shape)), exp_avg_sq: keep(Tensor.from(gpu, st.exp_avg_sq, p.shape)) });
    });
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.exp_avg.dispose();
      s.exp_avg_sq.dispose();
    }
    this.state.clear();
    this.unit?.dispose();
    this.unit = null;
  }
}
