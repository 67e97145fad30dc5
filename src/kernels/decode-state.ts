import type { Binding, Gpu } from '../gpu/gpu.js';
import { uniforms } from '../gpu/uniforms.js';
import { keep, Tensor } from '../tensor.js';
import { argmaxCandidates } from './argmax.js';
import { grid1d } from './grid.js';

/** Header words of the state buffer (wgsl/decode_common.wgsl). */
const HEADER_WORDS = 16;
const MAX_EOS = 8;
const MASK_MIN = -3.4028234663852886e38;

export interface DecodeStateShape {
  rows: number;
  /** Cache rows per sequence (and attention mask columns). */
  capacity: number;
  /** History columns per row: prompt + every token that may be generated. */
  histWidth: number;
  hidden: number;
  heads: number;
  headDim: number;
  /** Attention scale (OPT: head_dim ** -0.5). */
  scale: number;
}

/** What a row of a decode batch holds when it starts decoding (after its prompt filled the cache). */
export interface DecodeRow {
  /** The row's input_ids so far (prompt, padding included): what the history processors see. */
  ids: readonly number[];
  /** 0/1 for every cache row filled so far: 0 masks a padding position out. */
  mask: readonly number[];
  /** Position id of the next token fed (OPT's offset of 2 included). */
  position: number;
  /** Cache rows filled (the next token's key and value go to this row). */
  length: number;
  /** Prompt length, from which min_new_tokens counts. Default: ids.length. */
  start?: number;
  /** The token fed at the next step, when the host chooses it (sampling, beams). Default -1. */
  fed?: number;
}

/**
 * The device-side state of a decode batch: everything a decode step reads that changes from step to step, in
 * one i32 storage buffer, so that a captured step (src/gpu/program.ts) can be replayed unchanged. Per row: the
 * token fed at the next step, its position, the cache length, the history length and prompt length, the additive
 * attention mask over the cache rows and the history of token ids. Rows are independent and can be rewritten
 * between steps (`setRow`), which is what continuous batching needs.
 */
export class DecodeState {
  readonly tensor: Tensor;
  readonly offsets: { fed: number; pos: number; len: number; hlen: number; start: number; mask: number; hist: number };
  readonly words: number;

  private constructor(
    readonly gpu: Gpu,
    readonly shape: DecodeStateShape,
  ) {
    const { rows: R, capacity: C, histWidth: Hw } = shape;
    for (const [k, v] of Object.entries(shape)) if (k !== 'scale' && (!Number.isInteger(v) || v < 1)) throw new RangeError(`DecodeState: ${k} must be a positive integer, got ${v}`);
    const fed = HEADER_WORDS;
    this.offsets = { fed, pos: fed + R, len: fed + 2 * R, hlen: fed + 3 * R, start: fed + 4 * R, mask: fed + 5 * R, hist: fed + 5 * R + R * C };
    this.words = this.offsets.hist + R * Hw;
    this.tensor = keep(Tensor.empty(gpu, [this.words], 'i32', { persistent: true, label: 'decode state' }));
  }

  static create(gpu: Gpu, shape: DecodeStateShape): DecodeState {
    return new DecodeState(gpu, shape);
  }

  get rows(): number {
    return this.shape.rows;
  }

  /** Writes every row (and the header): before the first step. */
  setRows(rows: readonly DecodeRow[]): void {
    if (rows.length !== this.rows) throw new RangeError(`DecodeState: ${rows.length} rows for a batch of ${this.rows}`);
    const words = new Int32Array(this.words);
    const f = new Float32Array(words.buffer);
    const s = this.shape;
    const o = this.offsets;
    words.set([s.rows, s.capacity, s.hidden, s.heads, s.headDim, 3 * s.hidden, 0, s.histWidth, o.fed, o.pos, o.len, o.hlen, o.start, o.mask, o.hist]);
    f[6] = s.scale;
    rows.forEach((row, r) => this.fill(words, r, row));
    this.tensor.write(words);
  }

  /** Rewrites one row between steps (a finished sequence's slot taken by a new one). */
  setRow(r: number, row: DecodeRow): void {
    if (!Number.isInteger(r) || r < 0 || r >= this.rows) throw new RangeError(`DecodeState: row ${r} out of range`);
    const words = new Int32Array(this.words);
    this.fill(words, r, row);
    const o = this.offsets;
    const { capacity: C, histWidth: Hw } = this.shape;
    const buf = this.tensor.buffer;
    for (const at of [o.fed, o.pos, o.len, o.hlen, o.start]) this.gpu.write(buf, (at + r) * 4, words.subarray(at + r, at + r + 1));
    this.gpu.write(buf, (o.mask + r * C) * 4, words.subarray(o.mask + r * C, o.mask + (r + 1) * C));
    this.gpu.write(buf, (o.hist + r * Hw) * 4, words.subarray(o.hist + r * Hw, o.hist + (r + 1) * Hw));
  }

  /** Sets the token every row feeds at the next step (host-chosen tokens: sampling, beam search). */
  setFed(tokens: readonly number[]): void {
    if (tokens.length !== this.rows) throw new RangeError(`DecodeState: ${tokens.length} tokens for ${this.rows} rows`);
    this.gpu.write(this.tensor.buffer, this.offsets.fed * 4, Int32Array.from(tokens));
  }

  private fill(words: Int32Array, r: number, row: DecodeRow): void {
    const { capacity: C, histWidth: Hw } = this.shape;
    const o = this.offsets;
    if (row.length < 0 || row.length >= C) throw new RangeError(`DecodeState: a length of ${row.length} leaves no room in ${C} cache rows`);
    if (row.mask.length !== row.length) throw new RangeError(`DecodeState: ${row.mask.length} mask values for ${row.length} cache rows`);
    if (row.ids.length > Hw) throw new RangeError(`DecodeState: ${row.ids.length} ids exceed the history width ${Hw}`);
    words[o.fed + r] = row.fed ?? -1;
    words[o.pos + r] = row.position;
    words[o.len + r] = row.length;
    words[o.hlen + r] = row.ids.length;
    words[o.start + r] = row.start ?? row.ids.length;
    const mask = new Float32Array(words.buffer, (o.mask + r * C) * 4, C);
    mask.fill(0);
    row.mask.forEach((m, j) => (mask[j] = m ? 0 : MASK_MIN));
    words.fill(-1, o.hist + r * Hw, o.hist + (r + 1) * Hw);
    words.set(row.ids, o.hist + r * Hw);
  }

  /** The history as an [R, histWidth] i32 view (ids past a row's length are -1): the repetition penalty's id lists. */
  history(): Tensor {
    return this.tensor.rows(this.offsets.hist, this.rows * this.shape.histWidth).reshape([this.rows, this.shape.histWidth]);
  }

  /** A [R] i32 view of the fed tokens. */
  fed(): Tensor {
    return this.tensor.rows(this.offsets.fed, this.rows);
  }

  /** A [R] i32 view of the positions. */
  positions(): Tensor {
    return this.tensor.rows(this.offsets.pos, this.rows);
  }

  /** Every row's position and cache length move on by one (after a step's forward). */
  commit(): void {
    dispatchState(this, { COMMIT: true }, [], perRow(this.rows));
  }

  /**
   * Greedy choice on the device from logits [R, V]: each row's first maximum becomes its fed token and joins
   * its history. With `commit` (logits of a step, not of the prompt) the row's position and length move on first.
   */
  pick(logits: Tensor, options: { commit: boolean }): void {
    const { cand, chunks } = argmaxCandidates(logits);
    try {
      dispatchState(this, { PICK: true }, [cand.bind().binding], perRow(this.rows), { chunks, commit: options.commit });
    } finally {
      cand.dispose();
    }
  }

  /** The history-dependent processors in place on logits [R, V] f32: no-repeat n-grams and min-length eos bans. */
  ban(logits: Tensor, options: { ngram: number; minLength: number; minNewTokens: number; eos: readonly number[] }): void {
    if (logits.ndim !== 2 || logits.dtype !== 'f32' || logits.dim(0) !== this.rows) throw new TypeError(`DecodeState.ban: logits must be f32 [${this.rows}, V], got ${logits}`);
    if (options.eos.length > MAX_EOS) throw new RangeError(`DecodeState.ban: at most ${MAX_EOS} eos ids`);
    const g = grid1d(this.gpu, this.rows * this.shape.histWidth, 64);
    const bl = logits.bind();
    dispatchState(this, { BANS: true }, [bl.binding], g.workgroups, {
      width: logits.dim(1),
      logitsOff: bl.elementOffset,
      ngram: options.ngram,
      minLength: options.minLength,
      minNew: options.minNewTokens,
      eos: options.eos,
      rowStride: g.rowStride,
    });
  }

  /** Row i becomes row parents[i] (beam search), every per-row array included. */
  gather(parents: readonly number[]): void {
    if (parents.length !== this.rows || parents.some((p) => !Number.isInteger(p) || p < 0 || p >= this.rows)) throw new RangeError('DecodeState.gather: parents must pick existing rows, one per row');
    const old = Tensor.empty(this.gpu, [this.words], 'i32');
    const src = Tensor.from(this.gpu, Int32Array.from(parents), [this.rows], 'i32');
    try {
      this.gpu.copyBuffer(this.tensor.buffer, 0, old.buffer, 0, this.words * 4);
      dispatchState(this, { GATHER: true }, [old.bind().binding, src.bind().binding], perRow(this.rows));
    } finally {
      old.dispose();
      src.dispose();
    }
  }

  dispose(): void {
    this.tensor.dispose();
  }
}

/** One invocation per row, 64 per workgroup. */
function perRow(rows: number): [number, number] {
  return [Math.ceil(rows / 64), 1];
}

interface StateParams {
  chunks?: number;
  width?: number;
  logitsOff?: number;
  ngram?: number;
  minLength?: number;
  minNew?: number;
  eos?: readonly number[];
  rowStride?: number;
  commit?: boolean;
}

function dispatchState(s: DecodeState, mode: Record<string, boolean>, extra: Binding[], workgroups: [number, number], q: StateParams = {}): void {
  const gpu = s.gpu;
  const eos = new Array<number>(MAX_EOS).fill(-1);
  (q.eos ?? []).forEach((e, i) => (eos[i] = e));
  gpu.dispatch({
    label: `decode_state:${Object.keys(mode)[0]!.toLowerCase()}`,
    pipeline: gpu.pipeline('decode_state', mode),
    uniforms: uniforms()
      .u32(s.rows, q.chunks ?? 0, q.width ?? 0, q.logitsOff ?? 0, q.ngram ?? 0, q.minLength ?? 0, q.minNew ?? 0, q.eos?.length ?? 0)
      .i32(...eos)
      .u32(q.rowStride ?? 0)
      .f32(-Infinity)
      .u32(q.commit ? 1 : 0, 0)
      .build(),
    buffers: [s.tensor.bind().binding, ...extra],
    workgroups,
  });
}
