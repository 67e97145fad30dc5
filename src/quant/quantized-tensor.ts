import type { Gpu } from '../gpu/gpu.js';
import { keep, Tensor, type TensorOptions } from '../tensor.js';
import type { QuantizedRows } from '../cpu/quantize.js';
import { codesPerWord, groupsPerRow, rowBytes, type QuantScheme } from './format.js';

/**
 * A quantized [N, K] weight on the GPU (src/quant/format.ts has the layout): `codes`, u32 words [N, rowWords]
 * with each row whole groups of packed codes, and `scales`, f16 [N, groups]. Rows stay contiguous in both, so
 * row views (`rows`), row splits over the binding limit and byte copies (fuse_qkv) work as for float weights.
 * The linear kernels take it wherever they take a float weight.
 */
export class QuantizedTensor {
  private constructor(
    readonly scheme: QuantScheme,
    readonly shape: readonly [number, number],
    readonly codes: Tensor,
    readonly scales: Tensor,
  ) {}

  /** Uninitialised storage for an [N, K] weight (the loader fills it). */
  static empty(gpu: Gpu, shape: readonly [number, number], scheme: QuantScheme, options: TensorOptions = {}): QuantizedTensor {
    const [N, K] = shape;
    if (!Number.isInteger(N) || !Number.isInteger(K) || N < 0 || K < 1) throw new RangeError(`quantized weight: invalid shape [${shape.join(', ')}]`);
    const codes = Tensor.empty(gpu, [N, rowBytes(scheme, K) / 4], 'u32', { ...options, label: options.label && `${options.label}.codes` });
    try {
      const scales = Tensor.empty(gpu, [N, groupsPerRow(K)], 'f16', { ...options, label: options.label && `${options.label}.scales` });
      return new QuantizedTensor(scheme, [N, K], codes, scales);
    } catch (e) {
      codes.dispose();
      throw e;
    }
  }

  /** Uploads host codes and scales (as the reference quantizer makes them). */
  static from(gpu: Gpu, q: QuantizedRows, options: TensorOptions = {}): QuantizedTensor {
    const t = QuantizedTensor.empty(gpu, [q.N, q.K], q.scheme, options);
    try {
      t.codes.write(new Uint32Array(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength / 4));
      t.scales.write(q.scales);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  get gpu(): Gpu {
    return this.codes.gpu;
  }
  get ndim(): 2 {
    return 2;
  }
  get N(): number {
    return this.shape[0];
  }
  get K(): number {
    return this.shape[1];
  }
  /** Codes per row including the padding to whole groups: the kernels' row stride in codes. */
  get paddedK(): number {
    return (this.codes.dim(1) * codesPerWord(this.scheme)) | 0;
  }
  get byteLength(): number {
    return this.codes.byteLength + this.scales.byteLength;
  }
  get disposed(): boolean {
    return this.codes.disposed;
  }
  dim(d: number): number {
    const v = this.shape[d < 0 ? 2 + d : d];
    if (v === undefined) throw new RangeError(`dim ${d} out of range for a quantized weight`);
    return v;
  }

  /** Rows `start .. start+length` (views of both codes and scales). */
  rows(start: number, length: number): QuantizedTensor {
    const codes = this.codes.rows(start, length);
    try {
      return new QuantizedTensor(this.scheme, [length, this.K], codes, this.scales.rows(start, length));
    } catch (e) {
      codes.dispose();
      throw e;
    }
  }

  /** A new handle on the same data (disposed independently). */
  ref(): QuantizedTensor {
    return this.rows(0, this.N);
  }

  dispose(): void {
    this.codes.dispose();
    this.scales.dispose();
  }

  toString(): string {
    return `QuantizedTensor(${this.scheme}[${this.shape.join(', ')}])`;
  }
}

/** What a linear layer multiplies by: a float tensor or a quantized one. */
export type Weight = Tensor | QuantizedTensor;

/**
 * The rows of `parts` one after another in a new quantized weight (byte copies of codes and scales, as
 * fuse_qkv joins float weights). Every part has the same scheme and K.
 */
export function concatQuantizedRows(parts: readonly QuantizedTensor[], options: TensorOptions = {}): QuantizedTensor {
  const first = parts[0];
  if (!first) throw new RangeError('concatQuantizedRows: no parts');
  for (const q of parts) {
    if (q.scheme !== first.scheme || q.K !== first.K) throw new TypeError(`concatQuantizedRows: ${q} does not match ${first}`);
  }
  const gpu = first.gpu;
  const N = parts.reduce((a, q) => a + q.N, 0);
  const out = QuantizedTensor.empty(gpu, [N, first.K], first.scheme, options);
  try {
    let row = 0;
    for (const q of parts) {
      for (const [src, dst] of [[q.codes, out.codes], [q.scales, out.scales]] as const) {
        const rowBytes = src.byteLength / q.N;
        const dstByte = dst.byteOffset + row * rowBytes;
        if (src.byteOffset % 4 || dstByte % 4 || src.byteLength % 4) {
          throw new RangeError(`concatQuantizedRows: ${q} rows are not 4-byte aligned for a buffer copy`);
        }
        gpu.copyBuffer(src.buffer, src.byteOffset, dst.buffer, dstByte, src.byteLength);
      }
      row += q.N;
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/** The tensors that hold a weight: a quantized one's codes and scales, or the float tensor itself. */
export function weightTensors(w: Weight): Tensor[] {
  return w instanceof QuantizedTensor ? [w.codes, w.scales] : [w];
}

/** keep() for either kind of weight: the caller owns it and must dispose it. */
export function keepWeight<W extends Weight>(w: W): W {
  if (w instanceof QuantizedTensor) {
    keep(w.codes);
    keep(w.scales);
  } else {
    keep(w);
  }
  return w;
}
