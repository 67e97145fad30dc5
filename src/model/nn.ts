import { dropout, embedding, layerNorm, linear } from '../autograd/functional.js';
import type { Activation, LayerNormPrologue } from '../kernels/linear.js';
import type { Tensor } from '../tensor.js';
import { Module, Parameter, type ParameterRole } from './module.js';

export interface LinearCallOptions {
  /** Fused activation after the bias (the HF code applies ACT2FN right after this layer). */
  activation?: Activation;
  /** Fused residual add after the activation. */
  residual?: Tensor;
  /** A LayerNorm applied to x first (fused into the GEMV kernels as their prologue). */
  layerNorm?: LayerNormPrologue;
}

/** nn.Linear: y = x W^T + b, weight [out_features, in_features]. */
export class Linear extends Module<[Tensor, LinearCallOptions?], Tensor> {
  weight: Parameter;
  bias: Parameter | null;

  constructor(
    readonly in_features: number,
    readonly out_features: number,
    options: { bias?: boolean; role?: ParameterRole } = {},
  ) {
    super();
    const role = options.role ?? 'matmul';
    this.weight = new Parameter([out_features, in_features], role);
    this.bias = options.bias === false ? null : new Parameter([out_features], 'fp32');
  }

  forward(x: Tensor, options: LinearCallOptions = {}): Tensor {
    return linear(x, this.weight.data, this.bias?.value ?? null, options);
  }
}

/** nn.LayerNorm over the last dimension. */
export class LayerNorm extends Module<[Tensor, { residual?: Tensor }?], Tensor> {
  weight: Parameter;
  bias: Parameter;

  constructor(
    readonly normalized_shape: number,
    readonly eps: number,
  ) {
    super();
    this.weight = new Parameter([normalized_shape], 'fp32');
    this.bias = new Parameter([normalized_shape], 'fp32');
  }

  /** This LayerNorm as the prologue of a following linear (`Linear.call(x, { layerNorm })`). */
  asPrologue(): LayerNormPrologue {
    return { weight: this.weight.value, bias: this.bias.value, eps: this.eps };
  }

  /** LayerNorm(x), or LayerNorm(x + residual) when a residual is given (BERT-style post-LN, fused). */
  forward(x: Tensor, options: { residual?: Tensor } = {}): Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, this.eps, options);
  }
}

/** nn.Embedding: rows of a [num_embeddings, embedding_dim] table gathered by i32 ids. */
export class Embedding extends Module<[Tensor], Tensor> {
  weight: Parameter;

  constructor(
    readonly num_embeddings: number,
    readonly embedding_dim: number,
    role: ParameterRole = 'matmul',
  ) {
    super();
    this.weight = new Parameter([num_embeddings, embedding_dim], role);
  }

  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight.value);
  }
}

/** nn.Dropout: zeroes elements with probability p while training (module.train()), identity in eval mode. */
export class Dropout extends Module<[Tensor], Tensor> {
  constructor(public p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
