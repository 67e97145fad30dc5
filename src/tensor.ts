import type { Binding, Gpu } from './gpu/gpu.js';
import { f16ArrayToF32, f32ArrayToF16 } from './util/half.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export type HostArray = Float32Array | Int32Array | Uint32Array;

export interface BoundTensor {
  binding: Binding;
  /** Where the tensor's first element sits inside `binding`, in elements. */
  elementOffset: number;
}

/** A GPU buffer shared by a tensor and its views; returned to the pool when the last one is disposed. */
class Storage {
  private refs = 1;
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly byteLength: number,
  ) {}
  retain(): void {
    if (this.refs <= 0) throw new Error('use of a disposed tensor');
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) this.gpu.pool.release(this.buffer);
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid shape [${shape.join(', ')}]`);
  }
}

export interface TensorOptions {
  /** Exactly sized and never pooled: for weights and caches that live long. */
  persistent?: boolean;
  label?: string;
}

/**
 * A contiguous, row-major array on the GPU. Views (reshape, row ranges) share storage without copying;
 * every tensor (view or not) must be disposed, and the buffer returns to the pool with the last one.
 */
export class Tensor {
  private disposedFlag = false;

  private constructor(
    readonly gpu: Gpu,
    private readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Offset of the first element in the buffer, in elements. */
    readonly offset: number,
  ) {
    scopes[scopes.length - 1]?.add(this);
  }

  static empty(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32', options: TensorOptions = {}): Tensor {
    checkShape(shape);
    // f16 storage works on every device: kernels read f16 weights as packed pairs without shader-f16;
    // kernels that need f16 arithmetic or f16 outputs check for the feature themselves.
    const byteLength = Math.max(4, Math.ceil((numel(shape) * BYTES_PER_ELEMENT[dtype]) / 4) * 4);
    const buffer = gpu.pool.acquire(byteLength, { exact: options.persistent, label: options.label });
    return new Tensor(gpu, new Storage(gpu, buffer, byteLength), [...shape], dtype, 0);
  }

  /**
   * Uploads host data. f16 tensors take float32 values (converted, round to nearest even) or raw
   * binary16 bits as a Uint16Array.
   */
  static from(gpu: Gpu, data: ArrayLike<number> | HostArray | Uint16Array, shape: readonly number[], dtype: DType = 'f32', options: TensorOptions = {}): Tensor {
    checkShape(shape);
    const n = numel(shape);
    if (data.length !== n) throw new RangeError(`data has ${data.length} elements, shape [${shape.join(', ')}] needs ${n}`);
    const t = Tensor.empty(gpu, shape, dtype, options);
    try {
      t.write(data);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** Overwrites the whole tensor with host data. */
  write(data: ArrayLike<number> | HostArray | Uint16Array): void {
    this.assertLive();
    if (data.length !== this.size) throw new RangeError(`write of ${data.length} elements into a tensor of ${this.size}`);
    this.gpu.write(this.storage.buffer, this.byteOffset, toHost(data, this.dtype));
  }

  get size(): number {
    return numel(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get byteOffset(): number {
    return this.offset * BYTES_PER_ELEMENT[this.dtype];
  }
  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }
  get buffer(): GPUBuffer {
    this.assertLive();
    return this.storage.buffer;
  }
  get disposed(): boolean {
    return this.disposedFlag;
  }
  /** Size along `dim` (negative counts from the end). */
  dim(d: number): number {
    const i = d < 0 ? this.shape.length + d : d;
    const v = this.shape[i];
    if (v === undefined) throw new RangeError(`dim ${d} out of range for shape [${this.shape.join(', ')}]`);
    return v;
  }

  /**
   * A binding that covers this tensor, starting at the nearest aligned offset at or below it, and where
   * the tensor starts inside it (in elements). Kernels take that element offset as a parameter, so
   * views at any offset work without copies.
   */
  bind(): BoundTensor {
    this.assertLive();
    const align = this.gpu.caps.minStorageBufferOffsetAlignment;
    const start = this.byteOffset;
    const alignedStart = start - (start % align);
    const end = Math.min(this.storage.byteLength, Math.ceil((start + this.byteLength) / 4) * 4);
    const size = Math.max(4, end - alignedStart);
    if (size > this.gpu.caps.maxStorageBufferBindingSize) {
      throw new RangeError(`${this} spans ${size} bytes, over the storage binding limit (${this.gpu.caps.maxStorageBufferBindingSize}); this kernel cannot split it`);
    }
    return {
      binding: { buffer: this.storage.buffer, offset: alignedStart, size },
      elementOffset: (start - alignedStart) / BYTES_PER_ELEMENT[this.dtype],
    };
  }

  /** Byte length of the GPU buffer behind this tensor (views included). */
  get storageByteLength(): number {
    return this.storage.byteLength;
  }

  private view(shape: readonly number[], offset: number): Tensor {
    this.assertLive();
    this.storage.retain();
    const v = new Tensor(this.gpu, this.storage, shape, this.dtype, offset);
    autogradHooks?.onView(this, v, offset - this.offset);
    return v;
  }

  /**
   * Reverse mode from this tensor (a loss, one element) or with `grad` of its shape: adds the gradients of
   * every trainable Parameter it depends on to `param.grad` and frees the recorded graph (src/autograd).
   */
  backward(grad?: Tensor): void {
    if (!autogradHooks) throw new Error('backward: no autograd engine is loaded');
    autogradHooks.backward(this, grad);
  }

  /** Same data, new shape (one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    if (shape.length - known.length > 1) throw new RangeError('reshape: at most one -1');
    const k = numel(known);
    const full = shape.map((d) => (d === -1 ? (k === 0 ? 0 : this.size / k) : d));
    if (numel(full) !== this.size || full.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new RangeError(`cannot reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
    }
    return this.view(full, this.offset);
  }

  /** Rows `start .. start+length` along the first dimension (a view). */
  rows(start: number, length: number): Tensor {
    const n = this.shape[0] ?? 1;
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > n) {
      throw new RangeError(`rows(${start}, ${length}) outside dimension 0 of size ${n}`);
    }
    const rowSize = n === 0 ? 0 : this.size / n;
    return this.view([length, ...this.shape.slice(1)], this.offset + start * rowSize);
  }

  /** A new handle on the same data (disposed independently). */
  ref(): Tensor {
    return this.view(this.shape, this.offset);
  }

  /** Values on the host: f16 comes back as float32. */
  async read(): Promise<HostArray> {
    if (this.dtype === 'f16') return f16ArrayToF32(await this.readF16Bits());
    const bytes = await this.readBytes();
    if (this.dtype === 'i32') return new Int32Array(bytes);
    if (this.dtype === 'u32') return new Uint32Array(bytes);
    return new Float32Array(bytes);
  }

  /** binary16 bits of an f16 tensor. */
  async readF16Bits(): Promise<Uint16Array> {
    if (this.dtype !== 'f16') throw new Error(`readF16Bits on a ${this.dtype} tensor`);
    return new Uint16Array(await this.readBytes());
  }

  private async readBytes(): Promise<ArrayBuffer> {
    this.assertLive();
    const start = this.byteOffset;
    const alignedStart = start - (start % 4);
    const bytes = await this.gpu.read(this.storage.buffer, alignedStart, this.byteLength + (start - alignedStart));
    return bytes.slice(start - alignedStart, start - alignedStart + this.byteLength);
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.storage.release();
  }

  private assertLive(): void {
    if (this.disposedFlag) throw new Error('use of a disposed tensor');
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(', ')}])`;
  }
}

/** What the autograd engine (src/autograd/tape.ts) hooks into: views of recorded tensors, and backward(). */
export interface AutogradHooks {
  onView(source: Tensor, view: Tensor, elementOffset: number): void;
  backward(root: Tensor, grad?: Tensor): void;
}

let autogradHooks: AutogradHooks | null = null;

/** Installed once by the autograd module. */
export function setAutogradHooks(hooks: AutogradHooks): void {
  autogradHooks = hooks;
}

function toHost(data: ArrayLike<number> | HostArray | Uint16Array, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'f16':
      if (data instanceof Uint16Array) return data;
      return f32ArrayToF16(data instanceof Float32Array ? data : Float32Array.from(data));
    case 'f32':
      return data instanceof Float32Array ? data : Float32Array.from(data);
    case 'i32':
      return data instanceof Int32Array ? data : Int32Array.from(data);
    case 'u32':
      return data instanceof Uint32Array ? data : Uint32Array.from(data);
  }
}

// ------------------------------------------------------------------ scopes

const scopes: Set<Tensor>[] = [];

function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  if (ArrayBuffer.isView(value)) return;
  seen.add(value);
  const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const v of items) collectTensors(v, out, seen);
}

/**
 * Runs `fn` and disposes every tensor created inside it except those reachable from its result (tensors,
 * arrays, Maps and plain objects are searched), which move to the enclosing scope. Forward passes read
 * like their PyTorch twins this way, without a dispose() after every kernel.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function');
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Disposes every tensor reachable from `value` (model outputs: objects, arrays, Maps), each once. */
export function disposeTree(value: unknown): void {
  const found = new Set<Tensor>();
  collectTensors(value, found);
  for (const t of found) t.dispose();
}

/** Takes `t` out of every enclosing tidy() scope: the caller now owns it and must dispose it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}
