/**
 * The decode state kernels (decode_state.wgsl) against host references: pick (the argmax of each row, ties to
 * the lowest index, over rows wider than one argmax chunk) and what it advances, commit, the history bans
 * (no-repeat n-grams and min-length eos bans, as logits-process.ts computes them) and gather.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generationConfigFromJson, mergeGenerationOptions } from '../../src/generation/config.js';
import { bannedTokens } from '../../src/generation/logits-process.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { DecodeState, type DecodeRow } from '../../src/kernels/decode-state.js';
import { Tensor } from '../../src/tensor.js';
import { rng, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const SHAPE = { capacity: 12, histWidth: 16, hidden: 8, heads: 2, headDim: 4, scale: 0.5 };

function rowsOf(histories: number[][], lengths: number[]): DecodeRow[] {
  return histories.map((ids, r) => ({ ids, mask: new Array<number>(lengths[r]!).fill(1), position: 10 + r, length: lengths[r]!, start: 3 }));
}

async function words(state: DecodeState): Promise<Int32Array> {
  return (await state.tensor.read()) as Int32Array;
}

describe('decode state kernels', () => {
  it('pick: the first maximum of each row becomes the fed token and joins the history; commit moves rows on', async () => {
    const R = 3;
    const V = 9000; // three argmax chunks
    const r = rng(7);
    const logits = new Float32Array(R * V).map(() => r());
    logits[0 * V + 4100] = 5; // row 0: one maximum in the second chunk
    logits[1 * V + 8999] = 7; // row 1: ties in the last and first chunks: the lowest index wins
    logits[1 * V + 17] = 7;
    logits.fill(-Infinity, 2 * V, 3 * V); // row 2: all -inf: index 0, as torch.argmax
    const histories = [[1, 2, 3], [4, 5], [6]];
    const state = DecodeState.create(gpu, { ...SHAPE, rows: R });
    state.setRows(rowsOf(histories, [4, 5, 6]));
    const t = Tensor.from(gpu, logits, [R, V]);
    state.pick(t, { commit: false });
    let w = await words(state);
    const o = state.offsets;
    expect(Array.from(w.subarray(o.fed, o.fed + R))).toEqual([4100, 17, 0]);
    expect(Array.from(w.subarray(o.pos, o.pos + R))).toEqual([10, 11, 12]);
    expect(Array.from(w.subarray(o.len, o.len + R))).toEqual([4, 5, 6]);
    expect(Array.from(w.subarray(o.hlen, o.hlen + R))).toEqual([4, 3, 2]);
    expect(Array.from(w.subarray(o.hist, o.hist + 5))).toEqual([1, 2, 3, 4100, -1]);
    state.pick(t, { commit: true });
    state.commit();
    w = await words(state);
    expect(Array.from(w.subarray(o.pos, o.pos + R))).toEqual([12, 13, 14]);
    expect(Array.from(w.subarray(o.len, o.len + R))).toEqual([6, 7, 8]);
    expect(Array.from(w.subarray(o.hist + SHAPE.histWidth, o.hist + SHAPE.histWidth + 5))).toEqual([4, 5, 17, 17, -1]);
    t.dispose();
    state.dispose();
  });

  it('bans: no-repeat n-grams and the min-length eos ban equal the host processors', async () => {
    const V = 50;
    const r = rng(3);
    const histories = Array.from({ length: 5 }, (_, i) => Array.from({ length: 6 + i * 2 }, () => Math.floor(r() * 6)));
    const base = generationConfigFromJson(null, { bos_token_id: 2, eos_token_id: 7, pad_token_id: 1 });
    for (const options of [
      { no_repeat_ngram_size: 2 },
      { no_repeat_ngram_size: 3, min_new_tokens: 5 },
      { no_repeat_ngram_size: 1, eos_token_id: [7, 9, 11], min_length: 11 },
      { min_length: 9 },
    ]) {
      const c = mergeGenerationOptions(base, options);
      const state = DecodeState.create(gpu, { ...SHAPE, rows: histories.length });
      state.setRows(rowsOf(histories, histories.map(() => 3)));
      const logits = Tensor.from(gpu, new Float32Array(histories.length * V).fill(1), [histories.length, V]);
      const minLength = c.min_length > 0 || c.min_new_tokens > 0;
      state.ban(logits, { ngram: c.no_repeat_ngram_size, minLength: c.min_length, minNewTokens: c.min_new_tokens, eos: minLength ? c.eos_token_id : [] });
      const got = await logits.read();
      histories.forEach((h, row) => {
        const banned = Array.from(got.subarray(row * V, (row + 1) * V)).flatMap((v, i) => (v === -Infinity ? [i] : []));
        expect(banned, `${JSON.stringify(options)} row ${row}`).toEqual([...bannedTokens(c, h, 3)].sort((a, b) => a - b));
      });
      logits.dispose();
      state.dispose();
    }
  });

  it('gather: rows take the state of their parents (beam search)', async () => {
    const state = DecodeState.create(gpu, { ...SHAPE, rows: 3 });
    state.setRows(rowsOf([[1], [2, 2], [3, 3, 3]], [2, 3, 4]));
    const before = await words(state);
    state.gather([2, 2, 0]);
    const after = await words(state);
    const o = state.offsets;
    for (const [at, n] of [[o.fed, 1], [o.pos, 1], [o.len, 1], [o.hlen, 1], [o.start, 1], [o.mask, SHAPE.capacity], [o.hist, SHAPE.histWidth]] as const) {
      [2, 2, 0].forEach((p, i) => expect(Array.from(after.subarray(at + i * n, at + (i + 1) * n))).toEqual(Array.from(before.subarray(at + p * n, at + (p + 1) * n))));
    }
    expect(() => state.gather([0, 3, 1])).toThrow(/parents/);
    state.dispose();
  });

  it('refuses rows that do not fit', () => {
    const state = DecodeState.create(gpu, { ...SHAPE, rows: 1 });
    expect(() => state.setRows([{ ids: [1], mask: [1], position: 2, length: 12 }])).toThrow(/no room/);
    expect(() => state.setRows([{ ids: new Array<number>(17).fill(1), mask: [1], position: 2, length: 1 }])).toThrow(/history width/);
    expect(() => state.setRows([{ ids: [1], mask: [1, 1], position: 2, length: 1 }])).toThrow(/mask values/);
    state.dispose();
  });
});
