import type { Gpu } from '../gpu/gpu.js';
import { embedding } from '../kernels/embedding.js';
import { writeRows } from '../kernels/rows.js';
import { Tensor, keep, tidy, type DType } from '../tensor.js';

/**
 * Keys and values of every decoder layer, preallocated as [batch, capacity, hidden] so decoding appends rows
 * in place (HF's DynamicCache grows by concatenation instead). `length` rows are filled, for every batch row;
 * padding is handled by the attention mask, as in HF.
 */
export class OPTKVCache {
  private constructor(
    readonly gpu: Gpu,
    readonly layers: { key: Tensor; value: Tensor }[],
    readonly batch: number,
    public capacity: number,
    readonly hidden: number,
    readonly dtype: DType,
    public length: number,
  ) {}

  static create(gpu: Gpu, options: { numLayers: number; batch: number; capacity: number; hidden: number; dtype: DType }): OPTKVCache {
    const { numLayers, batch, capacity, hidden, dtype } = options;
    const layers: { key: Tensor; value: Tensor }[] = [];
    try {
      for (let i = 0; i < numLayers; i++) {
        layers.push({
          key: keep(Tensor.empty(gpu, [batch, capacity, hidden], dtype, { persistent: true, label: `kv.${i}.key` })),
          value: keep(Tensor.empty(gpu, [batch, capacity, hidden], dtype, { persistent: true, label: `kv.${i}.value` })),
        });
      }
    } catch (e) {
      for (const l of layers) (l.key.dispose(), l.value.dispose());
      throw e;
    }
    return new OPTKVCache(gpu, layers, batch, capacity, hidden, dtype, 0);
  }

  /** Makes room for `needed` rows in total, reallocating (and copying) when the capacity is too small. */
  reserve(needed: number): void {
    if (needed <= this.capacity) return;
    const capacity = Math.max(needed, Math.ceil(this.capacity * 1.5));
    for (const l of this.layers) {
      for (const which of ['key', 'value'] as const) {
        const old = l[which];
        const grown = keep(Tensor.empty(this.gpu, [this.batch, capacity, this.hidden], this.dtype, { persistent: true }));
        if (this.length > 0) {
          tidy(() => writeRows(grown, prefixRows(old, this.length), 0));
        }
        old.dispose();
        l[which] = grown;
      }
    }
    this.capacity = capacity;
  }

  /** Writes this step's keys/values ([batch, L, hidden]) of `layer` at row `start`. */
  write(layer: number, key: Tensor, value: Tensor, start: number): void {
    const l = this.layers[layer];
    if (!l) throw new RangeError(`cache has no layer ${layer}`);
    writeRows(l.key, key, start);
    writeRows(l.value, value, start);
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
      return this.layers.map((l) => ({
        key: keep(gatherBatch(l.key, ids, n)),
        value: keep(gatherBatch(l.value, ids, n)),
      }));
    });
    const out = new OPTKVCache(this.gpu, layers, n, this.capacity, this.hidden, this.dtype, this.length);
    return out;
  }

  dispose(): void {
    for (const l of this.layers) {
      l.key.dispose();
      l.value.dispose();
    }
  }

  /** GPU bytes held. */
  get byteLength(): number {
    return this.layers.reduce((a, l) => a + l.key.byteLength + l.value.byteLength, 0);
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
