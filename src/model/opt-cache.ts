import type { Gpu } from '../gpu/gpu.js';
import { embedding } from '../kernels/embedding.js';
import { writeRows } from '../kernels/rows.js';
import { BYTES_PER_ELEMENT, Tensor, keep, tidy, type DType } from '../tensor.js';

/**
 * Keys and values of every decoder layer, preallocated as [batch, capacity, 3 * hidden] so decoding appends rows
 * in place (HF's DynamicCache grows by concatenation instead). A row holds what OPT's fused projection
 * produces for one token, [key | value | query]: with a batch of one the projection writes straight into the
 * cache and attention reads keys and values from it by column (the query third is never read back; it costs
 * memory, not bandwidth). `length` rows are filled for every batch row; padding is the attention mask's job.
 */
export class OPTKVCache {
  private constructor(
    readonly gpu: Gpu,
    readonly layers: { kv: Tensor }[],
    readonly batch: number,
    public capacity: number,
    readonly hidden: number,
    readonly dtype: DType,
    public length: number,
  ) {}

  /** Row width: key, value and query columns. */
  get width(): number {
    return 3 * this.hidden;
  }

  /** Column where the keys (0) and values (hidden) start in a row. */
  get keyColumn(): number {
    return 0;
  }
  get valueColumn(): number {
    return this.hidden;
  }

  /**
   * `pooled`: the buffers come from the pool's size classes instead of being made to measure, for short-lived
   * caches of varying sizes (continuous batching's prompt passes) that would otherwise create and destroy a
   * buffer each time.
   */
  static create(gpu: Gpu, options: { numLayers: number; batch: number; capacity: number; hidden: number; dtype: DType; pooled?: boolean }): OPTKVCache {
    const { numLayers, batch, capacity, hidden, dtype } = options;
    const layers: { kv: Tensor }[] = [];
    try {
      for (let i = 0; i < numLayers; i++) {
        layers.push({ kv: keep(Tensor.empty(gpu, [batch, capacity, 3 * hidden], dtype, { persistent: !options.pooled, label: `kv.${i}` })) });
      }
    } catch (e) {
      for (const l of layers) l.kv.dispose();
      throw e;
    }
    return new OPTKVCache(gpu, layers, batch, capacity, hidden, dtype, 0);
  }

  /** Makes room for `needed` rows in total, reallocating (and copying) when the capacity is too small. */
  reserve(needed: number): void {
    if (needed <= this.capacity) return;
    const capacity = Math.max(needed, Math.ceil(this.capacity * 1.5));
    for (const l of this.layers) {
      const old = l.kv;
      const grown = keep(Tensor.empty(this.gpu, [this.batch, capacity, this.width], this.dtype, { persistent: true }));
      if (this.length > 0) tidy(() => writeRows(grown, prefixRows(old, this.length), 0));
      old.dispose(); // the pool destroys it only after the recorded copy is submitted
      l.kv = grown;
    }
    this.capacity = capacity;
  }

  /** Writes this step's fused projection ([batch, L, 3 * hidden]) of `layer` at row `start`. */
  write(layer: number, qkv: Tensor, start: number): void {
    writeRows(this.layer(layer), qkv, start);
  }

  /**
   * With a batch of one, the cache rows start .. start+L of `layer` as a contiguous [1, L, 3 * hidden] view, so
   * the projection can write there directly (null when the batch is larger: those rows are not contiguous).
   */
  slot(layer: number, start: number, L: number): Tensor | null {
    if (this.batch !== 1) return null;
    return tidy(() => this.layer(layer).reshape([this.capacity, this.width]).rows(start, L).reshape([1, L, this.width]));
  }

  layer(layer: number): Tensor {
    const l = this.layers[layer];
    if (!l) throw new RangeError(`cache has no layer ${layer}`);
    return l.kv;
  }

  /**
   * Reorders (and may repeat) batch rows: row i becomes old row `rows[i]`. Beam search calls this after choosing
   * which beams survive. `rows.length` may differ from `batch` (expanding a prompt into beams).
   */
  select(rows: readonly number[]): OPTKVCache {
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new RangeError(`cache row ${r} out of range`);
    const n = rows.length;
    const layers = tidy(() => {
      const ids = Tensor.from(this.gpu, Int32Array.from(rows), [n], 'i32');
      return this.layers.map((l) => ({ kv: keep(gatherBatch(l.kv, ids, n)) }));
    });
    return new OPTKVCache(this.gpu, layers, n, this.capacity, this.hidden, this.dtype, this.length);
  }

  /**
   * `select` without reallocating (the row count stays): row i becomes old row `rows[i]`, each layer gathered
   * into a temporary and copied back, so the buffers a captured decode step binds stay valid.
   */
  reorderInPlace(rows: readonly number[]): void {
    if (rows.length !== this.batch) throw new RangeError(`reorderInPlace keeps the batch of ${this.batch} rows, got ${rows.length}`);
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new RangeError(`cache row ${r} out of range`);
    if (rows.every((r, i) => r === i)) return;
    tidy(() => {
      const ids = Tensor.from(this.gpu, Int32Array.from(rows), [rows.length], 'i32');
      for (const l of this.layers) {
        const moved = gatherBatch(l.kv, ids, rows.length);
        this.gpu.copyBuffer(moved.buffer, moved.byteOffset, l.kv.buffer, l.kv.byteOffset, l.kv.byteLength);
        moved.dispose(); // reused only by work recorded after the copy
      }
    });
  }

  /**
   * Copies the first `rows` cache rows of batch row `srcRow` of `src` (same layers, width and dtype) into batch row
   * `dstRow` of this cache: a sequence prefilled on its own joins a running batch (continuous batching).
   */
  copyRowFrom(src: OPTKVCache, srcRow: number, dstRow: number, rows: number): void {
    if (src.layers.length !== this.layers.length || src.width !== this.width || src.dtype !== this.dtype) throw new Error('copyRowFrom: the caches differ in layers, width or dtype');
    if (!Number.isInteger(srcRow) || srcRow < 0 || srcRow >= src.batch) throw new RangeError(`copyRowFrom: source row ${srcRow} out of range`);
    if (!Number.isInteger(dstRow) || dstRow < 0 || dstRow >= this.batch) throw new RangeError(`copyRowFrom: row ${dstRow} out of range`);
    if (!Number.isInteger(rows) || rows < 0 || rows > src.capacity || rows > this.capacity) throw new RangeError(`copyRowFrom: ${rows} rows do not fit`);
    const rowBytes = this.width * BYTES_PER_ELEMENT[this.dtype];
    this.layers.forEach((l, i) => {
      const from = src.layers[i]!.kv;
      this.gpu.copyBuffer(from.buffer, from.byteOffset + srcRow * src.capacity * rowBytes, l.kv.buffer, l.kv.byteOffset + dstRow * this.capacity * rowBytes, rows * rowBytes);
    });
  }

  /**
   * Batch rows `start .. start+count` as a cache of their own over the same buffers (no copy), holding `length`
   * rows: continuous batching runs a step on the occupied slots of a larger cache. Disposing the view releases
   * only its handles; the buffers live until the owner is disposed too.
   */
  rowsView(start: number, count: number, length: number): OPTKVCache {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > this.batch) {
      throw new RangeError(`cache rows ${start}..${start + count} outside a batch of ${this.batch}`);
    }
    if (!Number.isInteger(length) || length < 0 || length > this.capacity) throw new RangeError(`cache view length ${length} outside 0..${this.capacity}`);
    const layers = this.layers.map((l) => ({ kv: keep(l.kv.rows(start, count)) }));
    return new OPTKVCache(this.gpu, layers, count, this.capacity, this.hidden, this.dtype, length);
  }

  dispose(): void {
    for (const l of this.layers) l.kv.dispose();
  }

  /** GPU bytes held. */
  get byteLength(): number {
    return this.layers.reduce((a, l) => a + l.kv.byteLength, 0);
  }
}

/** The first `rows` rows of every batch entry of a [B, T, D] tensor, as a [B, rows, D] tensor. */
function prefixRows(t: Tensor, rows: number): Tensor {
  const [B, T, D] = t.shape as [number, number, number];
  const ids = Tensor.from(t.gpu, Int32Array.from({ length: B * rows }, (_, i) => Math.floor(i / rows) * T + (i % rows)), [B * rows], 'i32');
  return embedding(ids, t.reshape([B * T, D]), { outDtype: t.dtype }).reshape([B, rows, D]);
}

/** Whole batch rows of a [B, T, D] tensor gathered by ids ([n] i32) into a new [n, T, D] tensor. */
function gatherBatch(t: Tensor, ids: Tensor, n: number): Tensor {
  const [B, T, D] = t.shape as [number, number, number];
  return embedding(ids, t.reshape([B, T * D]), { outDtype: t.dtype }).reshape([n, T, D]);
}
