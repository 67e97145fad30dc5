/**
 * The KV cache of a continuous batch: `slots` rows of one [slots, capacity, 3 * hidden] cache per layer (the
 * layout of OPTKVCache), allocated once and reused as requests come and go.
 *
 * All running rows share one column cursor T, as a left-padded static batch does: a step appends column T
 * to every row, and row r's tokens fill columns start_r .. T-1 (its own left padding included), with
 * everything before start_r masked out. A newcomer's prefilled rows are copied in right-aligned at the cursor;
 * a row that leaves is replaced by the last running row, so the running rows are always slots 0 .. n-1 and a
 * step runs on exactly those (a view of the first n slots, no gather).
 *
 * Columns are cheap to shift because only the live part of a row is copied: when the cursor reaches the
 * capacity, every row moves left by the smallest start (compaction); when a newcomer's prompt is longer than
 * the cursor, every row moves right. Capacity is `headroom` (1.5) times the longest row admitted so far: a row
 * spans at most its own need, so a compaction frees at least a third of the columns.
 *
 * WebGPU cannot copy a buffer onto itself, so moves within the cache go through a one-slot scratch buffer.
 */
import type { Gpu } from '../gpu/gpu.js';
import type { OPTKVCache } from '../model/opt-cache.js';
import type { OPTForCausalLM } from '../model/opt.js';
import { BYTES_PER_ELEMENT, Tensor, keep, type DType } from '../tensor.js';

/** What one running row holds besides its cache columns (the batch layer's per-row state). */
export interface SlotRow<T> {
  /** First column of the row's tokens (its prompt's left padding included). */
  start: number;
  /** 0/1 per column from `start` to the cursor: padding 0, tokens 1. */
  mask: number[];
  /** Columns the row may need in all (prompt + new tokens). */
  need: number;
  payload: T;
}

/** A prefilled row to admit: row `row` of the prefill cache, with its prompt mask. */
export interface Admission<T> {
  row: number;
  mask: readonly number[];
  need: number;
  payload: T;
}

export class SlotKVCache<T> {
  private store: OPTKVCache | null = null;
  private scratch: Tensor | null = null;
  private cursor = 0;
  private readonly running: SlotRow<T>[] = [];
  /** Copies and moves so far, for tests and metrics. */
  readonly stats = { admitted: 0, compactions: 0, shifts: 0, grows: 0, moves: 0 };

  constructor(
    private readonly lm: OPTForCausalLM,
    readonly slots: number,
    readonly dtype: DType,
    /** Capacity over the longest row's need: more memory, fewer compactions (each frees >= 1 - 1/headroom). */
    readonly headroom = 1.5,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer (got ${slots})`);
    if (!(headroom > 1 && headroom <= 16)) throw new RangeError(`headroom must be in (1, 16] (got ${headroom})`);
  }

  /** Running rows, in slot order. */
  get rows(): readonly SlotRow<T>[] {
    return this.running;
  }

  get free(): number {
    return this.slots - this.running.length;
  }

  /** Columns every row spans (the attention length of the next step before its new token). */
  get length(): number {
    return this.cursor;
  }

  get capacity(): number {
    return this.store?.capacity ?? 0;
  }

  /** GPU bytes held (the slot cache and its scratch). */
  get byteLength(): number {
    return (this.store?.byteLength ?? 0) + (this.scratch?.byteLength ?? 0);
  }

  /**
   * Copies rows of `prefill` (a cache holding `prefill.length` positions per row, e.g. a newcomer batch's prompt
   * pass) into free slots, right-aligned at the cursor. The same prefill row may be admitted several times
   * (samples of one prompt). Returns the slots, in the order given.
   */
  admit(prefill: OPTKVCache, rows: readonly Admission<T>[]): number[] {
    if (rows.length > this.free) throw new RangeError(`${rows.length} rows for ${this.free} free slots`);
    const P = prefill.length;
    for (const a of rows) {
      if (a.mask.length !== P) throw new RangeError(`a prompt mask of ${a.mask.length} columns for a prefill of ${P}`);
      if (a.need < P) throw new RangeError(`a row needing ${a.need} columns cannot hold its ${P}-column prompt`);
    }
    this.reserve(Math.max(P, ...rows.map((r) => r.need)));
    if (this.running.length === 0) this.cursor = P;
    else if (this.cursor < P) this.shift(P - this.cursor);
    const store = this.store!;
    const rowBytes = this.columnBytes;
    const slots: number[] = [];
    for (const a of rows) {
      const slot = this.running.length;
      const start = this.cursor - P;
      for (let l = 0; l < store.layers.length; l++) {
        const src = prefill.layer(l);
        const dst = store.layer(l);
        const srcOffset = src.byteOffset + a.row * prefill.capacity * rowBytes;
        this.gpu.copyBuffer(src.buffer, srcOffset, dst.buffer, this.offset(dst, slot, start), P * rowBytes);
      }
      this.running.push({ start, mask: [...a.mask], need: a.need, payload: a.payload });
      slots.push(slot);
      this.stats.admitted++;
    }
    return slots;
  }

  /** The row in `slot` leaves; the last running row takes its slot. */
  remove(slot: number): void {
    const last = this.running.length - 1;
    if (!Number.isInteger(slot) || slot < 0 || slot > last) throw new RangeError(`no running row in slot ${slot}`);
    if (slot !== last) {
      const moved = this.running[last]!;
      this.moveColumns(last, moved.start, slot, moved.start, this.cursor - moved.start);
      this.running[slot] = moved;
      this.stats.moves++;
    }
    this.running.pop();
    if (this.running.length === 0) this.cursor = 0;
  }

  /**
   * Makes room for one more column and returns what a decode step over the running rows needs: a cache view of
   * slots 0 .. n-1 holding the cursor's columns, and each row's attention mask including the new token. Call
   * `advance()` once the step ran.
   */
  stepInputs(): { cache: OPTKVCache; attention_mask: number[][] } {
    if (this.running.length === 0) throw new Error('no running rows');
    if (this.cursor + 1 > this.capacity) this.compact();
    const T = this.cursor;
    const attention_mask = this.running.map((r) => {
      const row = new Array<number>(T + 1).fill(0);
      for (let i = 0; i < r.mask.length; i++) row[r.start + i] = r.mask[i]!;
      row[T] = 1;
      return row;
    });
    return { cache: this.store!.rowsView(0, this.running.length, T), attention_mask };
  }

  /** Every running row gained the column the last step wrote. */
  advance(): void {
    for (const r of this.running) r.mask.push(1);
    this.cursor++;
  }

  dispose(): void {
    this.store?.dispose();
    this.store = null;
    this.scratch?.dispose();
    this.scratch = null;
    this.running.length = 0;
    this.cursor = 0;
  }

  // ---------------------------------------------------------------- storage

  private get gpu(): Gpu {
    return this.lm.lm_head.weight.value.gpu;
  }

  /** Bytes of one column (one token's key, value and query) of one row in one layer. */
  private get columnBytes(): number {
    return 3 * this.lm.config.hidden_size * BYTES_PER_ELEMENT[this.dtype];
  }

  private offset(layer: Tensor, slot: number, column: number): number {
    return layer.byteOffset + (slot * this.capacity + column) * this.columnBytes;
  }

  /**
   * Ensures the store exists with room for rows needing `need` columns each: capacity `headroom` times the
   * longest need, grown (live columns copied) when a longer row arrives.
   */
  private reserve(need: number): void {
    const wanted = Math.ceil(need * this.headroom) + 1;
    if (this.columnBytes % 4 !== 0) throw new Error(`KV rows of ${this.columnBytes} bytes cannot be copied (WebGPU copies 4-byte words)`);
    if (this.store && this.store.capacity >= wanted) return;
    const longest = Math.max(wanted, ...this.running.map((r) => Math.ceil(r.need * this.headroom) + 1));
    const next = this.lm.create_cache(this.gpu, this.slots, longest, this.dtype);
    const old = this.store;
    if (old) {
      const bytes = this.columnBytes;
      for (let l = 0; l < next.layers.length; l++) {
        const src = old.layer(l);
        const dst = next.layer(l);
        this.running.forEach((r, slot) => {
          const cols = this.cursor - r.start;
          const from = src.byteOffset + (slot * old.capacity + r.start) * bytes;
          const to = dst.byteOffset + (slot * next.capacity + r.start) * bytes;
          this.gpu.copyBuffer(src.buffer, from, dst.buffer, to, cols * bytes);
        });
      }
      old.dispose(); // destroyed once the recorded copies are submitted
      this.stats.grows++;
    }
    this.store = next;
    this.scratch?.dispose();
    this.scratch = keep(Tensor.empty(this.gpu, [next.capacity, 3 * this.lm.config.hidden_size], this.dtype, { persistent: true, label: 'kv.scratch' }));
  }

  /** Moves every row `by` columns to the right (a newcomer's prompt is longer than the cursor). */
  private shift(by: number): void {
    if (this.cursor + by > this.capacity) throw new Error(`cannot shift ${by} columns: cursor ${this.cursor}, capacity ${this.capacity}`);
    this.running.forEach((r, slot) => this.moveColumns(slot, r.start, slot, r.start + by, this.cursor - r.start));
    for (const r of this.running) r.start += by;
    this.cursor += by;
    this.stats.shifts++;
  }

  /** Moves every row left by the smallest start, freeing that many columns at the end. */
  private compact(): void {
    const by = Math.min(...this.running.map((r) => r.start));
    if (by === 0) throw new Error(`the KV cache is full: ${this.cursor} columns in use of ${this.capacity}`);
    this.running.forEach((r, slot) => this.moveColumns(slot, r.start, slot, r.start - by, this.cursor - r.start));
    for (const r of this.running) r.start -= by;
    this.cursor -= by;
    this.stats.compactions++;
  }

  /** Copies `cols` columns of a slot to a place in the same store, in every layer, through the scratch buffer. */
  private moveColumns(fromSlot: number, fromCol: number, toSlot: number, toCol: number, cols: number): void {
    if (cols <= 0) return;
    const gpu = this.gpu;
    const scratch = this.scratch!;
    const bytes = cols * this.columnBytes;
    for (const { kv } of this.store!.layers) {
      gpu.copyBuffer(kv.buffer, this.offset(kv, fromSlot, fromCol), scratch.buffer, scratch.byteOffset, bytes);
      gpu.copyBuffer(scratch.buffer, scratch.byteOffset, kv.buffer, this.offset(kv, toSlot, toCol), bytes);
    }
  }
}
