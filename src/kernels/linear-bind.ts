import type { Binding } from '../gpu/gpu.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor.js';

export interface RangeBinding {
  binding: Binding;
  /** Where element `start` of the range sits inside `binding`, in elements. */
  elementOffset: number;
  /** First and last byte (exclusive) of the buffer the binding covers, for overlap checks. */
  byteStart: number;
  byteEnd: number;
}

/**
 * Binds elements [start, start + count) of `t` (counted from t's first element), from the nearest
 * aligned offset below. Unlike `Tensor.bind()` it can bind part of a tensor, which is how operands
 * larger than the storage binding limit are split. The size is rounded up to 16 bytes where the
 * buffer allows, so that vec4 views of the binding include the last elements.
 */
export function bindRange(t: Tensor, start: number, count: number): RangeBinding {
  const gpu = t.gpu;
  const bpe = BYTES_PER_ELEMENT[t.dtype];
  const align = gpu.caps.minStorageBufferOffsetAlignment;
  const first = t.byteOffset + start * bpe;
  const alignedStart = first - (first % align);
  const storageEnd = t.storageByteLength;
  const end = Math.min(storageEnd, alignedStart + Math.ceil((first + count * bpe - alignedStart) / 16) * 16);
  const size = Math.max(4, end - alignedStart);
  if (size > gpu.caps.maxStorageBufferBindingSize) {
    throw new RangeError(`binding ${size} bytes of ${t} exceeds the storage binding limit (${gpu.caps.maxStorageBufferBindingSize})`);
  }
  return {
    binding: { buffer: t.buffer, offset: alignedStart, size },
    elementOffset: (first - alignedStart) / bpe,
    byteStart: alignedStart,
    byteEnd: alignedStart + size,
  };
}

/** Bytes a range of `count` elements starting anywhere may need once aligned (the worst case). */
export function worstCaseBindingBytes(t: Tensor, count: number): number {
  return t.gpu.caps.minStorageBufferOffsetAlignment + Math.ceil((count * BYTES_PER_ELEMENT[t.dtype]) / 16) * 16;
}
