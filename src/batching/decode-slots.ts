/**
 * The decode side of a continuous batch: `slots` rows of one preallocated KV cache, decoded by main's device
 * decode session (src/model/opt-decode.ts: one captured step replayed per token, each row's cache length,
 * position and mask read from its DecodeState). Rows are independent there, so a sequence joins by copying its
 * prefilled cache rows into a free slot and rewriting that slot's state row (`OPTDecodeSession.replaceRow`),
 * and leaves by being forgotten: no shared column cursor, no shifting or compaction, nothing recaptured.
 *
 * A step runs every row of its session, occupied or not, so sessions come in sizes: the smallest power of two
 * (capped at `slots`) that covers the highest occupied slot. Each size keeps its own captured step over the first
 * rows of the one cache, all captured when the cache is allocated (so the batch's GPU memory is fixed from its
 * first join until the cache grows); when the size changes, the new session's state is written from the host's
 * record of each row (mask, position, length). Newcomers take the lowest free slots, so a light load runs small
 * steps.
 * An idle row inside a session decodes garbage that nobody reads; its state is reset before its length would
 * run past the cache (the attention kernel appends at the row's length without a bound check).
 *
 * The cache grows (live rows copied, sessions dropped) when a row needs more columns than it has.
 */
import type { Gpu } from '../gpu/gpu.js';
import type { DecodeRow } from '../kernels/decode-state.js';
import type { OPTKVCache } from '../model/opt-cache.js';
import { OPTDecodeSession } from '../model/opt-decode.js';
import type { OPTForCausalLM } from '../model/opt.js';
import type { DType, Tensor } from '../tensor.js';

/** A prefilled row to admit: row `row` of the prefill cache (its first `prefill.length` columns), with its mask. */
export interface Admission<T> {
  row: number;
  /** 0/1 per prefill column (left padding 0). */
  mask: readonly number[];
  /** Columns the row may need in all (prompt + new tokens). */
  need: number;
  payload: T;
}

/** What the host keeps of an occupied slot, enough to rewrite its state row. */
interface SlotRecord<T> {
  mask: number[];
  /** Cache columns filled (the next token's key and value go to this column). */
  length: number;
  /** OPT position id of the next token fed (offset 2 included). */
  position: number;
  payload: T;
}

const IDLE: DecodeRow = { ids: [], mask: [], position: 2, length: 0, fed: 0 };

export class DecodeSlots<T> {
  private cache: OPTKVCache | null = null;
  private readonly records: (SlotRecord<T> | null)[];
  private readonly sessions = new Map<number, { session: OPTDecodeSession; view: OPTKVCache }>();
  /** Rows of the session in use, and each of its rows' cache length on the device (idle rows included). */
  private active = 0;
  private deviceLengths: number[] = [];
  /** For tests and metrics. */
  readonly stats = { admitted: 0, grows: 0, sessions: 0, switches: 0, idleResets: 0 };

  constructor(
    private readonly lm: OPTForCausalLM,
    readonly slots: number,
    readonly dtype: DType,
  ) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer (got ${slots})`);
    this.records = new Array<SlotRecord<T> | null>(slots).fill(null);
  }

  /** Occupied slots, ascending, with their payloads. */
  get rows(): { slot: number; payload: T }[] {
    const out: { slot: number; payload: T }[] = [];
    this.records.forEach((r, slot) => r && out.push({ slot, payload: r.payload }));
    return out;
  }

  get free(): number {
    return this.records.filter((r) => r === null).length;
  }

  get capacity(): number {
    return this.cache?.capacity ?? 0;
  }

  /** Rows the next step runs (the session's size). */
  get stepRows(): number {
    return this.sessionSize();
  }

  /** GPU bytes held: the cache and the sessions' states. */
  get byteLength(): number {
    let bytes = this.cache?.byteLength ?? 0;
    for (const { session } of this.sessions.values()) bytes += session.state.tensor.byteLength;
    return bytes;
  }

  /**
   * Copies rows of `prefill` (a newcomer batch's prompt pass, `prefill.length` columns per row) into the lowest
   * free slots. The same prefill row may be admitted several times (samples of one prompt). Returns the slots.
   */
  admit(prefill: OPTKVCache, rows: readonly Admission<T>[]): number[] {
    if (rows.length > this.free) throw new RangeError(`${rows.length} rows for ${this.free} free slots`);
    const P = prefill.length;
    for (const a of rows) {
      if (a.mask.length !== P) throw new RangeError(`a prompt mask of ${a.mask.length} columns for a prefill of ${P}`);
      if (a.need < P) throw new RangeError(`a row needing ${a.need} columns cannot hold its ${P}-column prompt`);
    }
    this.reserve(Math.max(...rows.map((r) => r.need)) + 1);
    const cache = this.cache!;
    const slots: number[] = [];
    for (const a of rows) {
      const slot = this.records.indexOf(null);
      const record: SlotRecord<T> = { mask: [...a.mask], length: P, position: a.mask.reduce((s, m) => s + m, 0) + 2, payload: a.payload };
      cache.copyRowFrom(prefill, a.row, slot, P);
      this.records[slot] = record;
      slots.push(slot);
      this.stats.admitted++;
    }
    // Rows inside the running session get their state rewritten in place; a larger session is set up whole.
    if (this.sessionSize() === this.active) {
      const { session } = this.sessions.get(this.active)!;
      for (const slot of slots) {
        session.state.setRow(slot, this.stateRow(this.records[slot]!));
        this.deviceLengths[slot] = this.records[slot]!.length;
      }
    }
    return slots;
  }

  /** The row in `slot` leaves; its slot is free for the next admission. */
  remove(slot: number): void {
    if (!this.records[slot]) throw new RangeError(`no running row in slot ${slot}`);
    this.records[slot] = null;
  }

  /**
   * One decode step: every occupied slot feeds `tokens.get(slot)`. Returns the step's logits for the occupied
   * slots only ([rows.length, V], in slot order, the caller's to dispose) via `take`, which receives the session's
   * logits [stepRows, V] (owned by the session: copy what is needed, do not dispose).
   */
  step(tokens: ReadonlyMap<number, number>, take: (logits: Tensor, occupied: readonly number[]) => Tensor): Tensor {
    const occupied = this.rows.map((r) => r.slot);
    if (occupied.length === 0) throw new Error('no running rows');
    const session = this.session();
    const C = this.capacity;
    // An idle row runs too; keep its cache length inside the cache.
    for (let r = 0; r < this.active; r++) {
      if (!this.records[r] && this.deviceLengths[r]! >= C - 1) {
        session.state.setRow(r, IDLE);
        this.deviceLengths[r] = 0;
        this.stats.idleResets++;
      }
    }
    const fed = Array.from({ length: this.active }, (_, r) => tokens.get(r) ?? 0);
    for (const slot of occupied) if (!tokens.has(slot)) throw new RangeError(`no token for the row in slot ${slot}`);
    const logits = take(session.step(fed), occupied);
    for (let r = 0; r < this.active; r++) this.deviceLengths[r]!++;
    for (const slot of occupied) {
      const rec = this.records[slot]!;
      rec.mask.push(1);
      rec.length++;
      rec.position++;
    }
    return logits;
  }

  dispose(): void {
    this.dropSessions();
    this.cache?.dispose();
    this.cache = null;
    this.records.fill(null);
  }

  // ---------------------------------------------------------------- sessions and storage

  private get gpu(): Gpu {
    return this.lm.lm_head.weight.value.gpu;
  }

  /** The smallest power of two (at most `slots`) covering the highest occupied slot. */
  private sessionSize(): number {
    let highest = -1;
    this.records.forEach((r, slot) => r && (highest = slot));
    let size = 1;
    while (size < highest + 1) size *= 2;
    return Math.min(size, this.slots);
  }

  private stateRow(rec: SlotRecord<T>): DecodeRow {
    return { ids: [], mask: rec.mask, position: rec.position, length: rec.length, fed: 0 };
  }

  /** The session of the current size, its state written from the records when it was not the one in use. */
  private session(): OPTDecodeSession {
    const size = this.sessionSize();
    const entry = this.sessions.get(size)!;
    if (size === this.active) return entry.session;
    const rows = Array.from({ length: size }, (_, r) => (this.records[r] ? this.stateRow(this.records[r]!) : IDLE));
    entry.session.state.setRows(rows);
    if (this.active !== 0) this.stats.switches++;
    this.active = size;
    this.deviceLengths = rows.map((r) => r.length);
    return entry.session;
  }

  /** A session (state and captured step) for every size a step can have, over the first rows of the cache. */
  private openSessions(): void {
    const sizes: number[] = [];
    for (let s = 1; s < this.slots; s *= 2) sizes.push(s);
    sizes.push(this.slots);
    for (const size of sizes) {
      const view = this.cache!.rowsView(0, size, 0);
      try {
        const session = new OPTDecodeSession(this.lm, view, new Array<DecodeRow>(size).fill(IDLE), 1);
        this.sessions.set(size, { session, view });
        session.prepare();
      } catch (e) {
        if (!this.sessions.has(size)) view.dispose();
        throw e;
      }
      this.stats.sessions++;
    }
  }

  private dropSessions(): void {
    for (const { session, view } of this.sessions.values()) {
      session.dispose();
      view.dispose();
    }
    this.sessions.clear();
    this.active = 0;
    this.deviceLengths = [];
  }

  /** Ensures `columns` cache columns per row, growing (live columns copied, sessions dropped) when short. */
  private reserve(columns: number): void {
    if (this.cache && this.cache.capacity >= columns) return;
    const capacity = Math.max(columns, Math.ceil(this.capacity * 1.5));
    const next = this.lm.create_cache(this.gpu, this.slots, capacity, this.dtype);
    const old = this.cache;
    if (old) {
      this.records.forEach((r, slot) => r && next.copyRowFrom(old, slot, slot, r.length));
      this.dropSessions();
      old.dispose(); // destroyed once the recorded copies are submitted
      this.stats.grows++;
    }
    this.cache = next;
    this.openSessions();
  }
}
