import { uniforms } from '../gpu/uniforms.js';
import { Tensor, type DType } from '../tensor.js';
import { dtypeDefines } from './dtype.js';
import { grid1d } from './grid.js';
import { newOutput } from './output.js';

const WG = 256;

type Op = 'OP_ADD' | 'OP_MUL' | 'OP_MUL_SCALAR' | 'OP_GELU' | 'OP_RELU' | 'OP_GELU_BACKWARD' | 'OP_RELU_BACKWARD';

/**
 * a + b. b has a's shape, or broadcasts along the leading dims: its shape (leading 1s ignored) is a
 * suffix of a's, e.g. [D] against [..., D] or [1, L, D] against [B, L, D]. Returns a's dtype.
 */
export function add(a: Tensor, b: Tensor): Tensor {
  return run('add', 'OP_ADD', a, b, 0);
}

/** a * b (b as for `add`) or a * scalar. Returns a's dtype. */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return run('mul', 'OP_MUL_SCALAR', a, null, b);
  return run('mul', 'OP_MUL', a, b, 0);
}

/** Exact (erf) GELU, HF's "gelu"; the erf approximation is within about 1e-7 absolute. */
export function gelu(x: Tensor): Tensor {
  return run('gelu', 'OP_GELU', x, null, 0);
}

/** max(x, 0); NaN stays NaN, as torch.relu. */
export function relu(x: Tensor): Tensor {
  return run('relu', 'OP_RELU', x, null, 0);
}

/** The gradient of `gelu` at its input x: dy * (Phi(x) + x phi(x)). dy has x's shape. */
export function geluBackward(x: Tensor, dy: Tensor): Tensor {
  sameSize('geluBackward', x, dy);
  return run('geluBackward', 'OP_GELU_BACKWARD', x, dy, 0);
}

/** The gradient of `relu` from its output y: dy where y > 0, else 0 (torch's threshold_backward). */
export function reluBackward(y: Tensor, dy: Tensor): Tensor {
  sameSize('reluBackward', y, dy);
  return run('reluBackward', 'OP_RELU_BACKWARD', y, dy, 0);
}

function sameSize(name: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size) throw new RangeError(`${name}: ${a} and the gradient ${b} differ in size`);
}

function checkFloat(name: string, role: string, t: Tensor): void {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new TypeError(`${name}: ${role} must be f32 or f16, got ${t}`);
}

/** Elements of b per period of a, or an error when b's shape does not broadcast against a's. */
function broadcastPeriod(name: string, a: Tensor, b: Tensor): number {
  const bShape = [...b.shape];
  while (bShape.length > 1 && bShape[0] === 1) bShape.shift();
  const suffix = a.shape.slice(a.ndim - bShape.length);
  const ok = bShape.length <= a.ndim && bShape.every((d, i) => d === suffix[i]);
  if (!ok && !(b.size === 1 && a.size > 0)) {
    throw new RangeError(`${name}: cannot broadcast ${b} against ${a} (b must have a's shape or a suffix of it)`);
  }
  return b.size;
}

function run(name: string, op: Op, a: Tensor, b: Tensor | null, scalar: number): Tensor {
  checkFloat(name, 'input', a);
  if (b) {
    checkFloat(name, 'second operand', b);
    if (b.gpu !== a.gpu) throw new Error(`${name}: operands live on different devices`);
  }
  const period = b ? broadcastPeriod(name, a, b) : 1;
  return newOutput(a.gpu, a.shape, a.dtype, (y) => record(name, op, a, b, scalar, period, y));
}

function record(name: string, op: Op, a: Tensor, b: Tensor | null, scalar: number, period: number, y: Tensor): void {
  const gpu = a.gpu;
  const ba = a.bind();
  const bb = b?.bind();
  const by = y.bind();
  const offsets = [ba.elementOffset, by.elementOffset, ...(bb ? [bb.elementOffset, period] : [])];
  const width = a.size % 4 === 0 && offsets.every((o) => o % 4 === 0) ? 4 : 1;
  const storage = (d: DType) => (width === 4 ? `vec4<${d}>` : d);
  const defines = {
    [op]: true,
    HAS_B: b !== null,
    A: storage(a.dtype),
    B: storage(b?.dtype ?? 'f32'),
    Y: storage(y.dtype),
    F: storage('f32'),
    ...dtypeDefines(a.dtype, b?.dtype ?? 'f32'),
  };
  const n = a.size / width;
  const g = grid1d(gpu, n, WG);
  gpu.dispatch({
    label: name,
    pipeline: gpu.pipeline('elementwise', defines),
    uniforms: uniforms()
      .u32(n, ba.elementOffset / width, (bb?.elementOffset ?? 0) / width, by.elementOffset / width, Math.max(1, period / width), g.rowStride)
      .f32(scalar)
      .u32(0)
      .build(),
    buffers: bb ? [ba.binding, bb.binding, by.binding] : [ba.binding, by.binding],
    workgroups: g.workgroups,
  });
}
