/** The kernels as plain functions on tensors, for research code and custom modules. */
export { copy, cast } from './copy.js';
export { linear, matmul, type LinearOptions, type MatmulOptions, type Activation } from './linear.js';
export { attention, attentionProbs, type AttentionOptions, type HeadsView } from './attention.js';
export { softmax, logSoftmax, type SoftmaxOptions } from './softmax.js';
export { layerNorm } from './layernorm.js';
export { add, mul, gelu, relu } from './elementwise.js';
export { embedding } from './embedding.js';
export { scatterRows } from './scatter.js';
export { im2col } from './im2col.js';
export { writeRows, concatRows } from './rows.js';
export { argmax } from './argmax.js';
export { topk, type TopK } from './topk.js';
export { repetitionPenalty, setLogits, scaleInPlace } from './logits.js';
