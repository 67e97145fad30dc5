/**
 * Logits processors: the host pieces against literal re-statements of HF's definitions, the GPU path
 * (processLogitsGpu) against the whole-row CPU versions (exact for bans, 1e-6 relative for the arithmetic),
 * top-p / draw helpers and the PRNG.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HF_GENERATION_DEFAULTS, type GenerationConfig } from '../../src/generation/config.js';
import { processLogitsGpu } from '../../src/generation/logits-process-gpu.js';
import { eosBanned, ngramBans, processRowCpu, softmaxOf, topKRow, topPRow } from '../../src/generation/logits-process.js';
import { Xoshiro128 } from '../../src/generation/rng.js';
import { drawToken, sortRow, topPCount } from '../../src/generation/sampling.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Tensor } from '../../src/tensor.js';
import { randn, rng, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const config = (o: Partial<GenerationConfig>): GenerationConfig => ({ ...HF_GENERATION_DEFAULTS, eos_token_id: [3], pad_token_id: 1, ...o });

/** NoRepeatNGramLogitsProcessor restated: a dict from (n-1)-gram prefix to next tokens over the whole sequence. */
function ngramBansLiteral(seq: number[], n: number): number[] {
  if (seq.length + 1 < n) return [];
  const dict = new Map<string, number[]>();
  for (let i = 0; i + n <= seq.length; i++) {
    const key = seq.slice(i, i + n - 1).join(' ');
    dict.set(key, [...(dict.get(key) ?? []), seq[i + n - 1]!]);
  }
  return [...new Set(dict.get(seq.slice(seq.length - n + 1).join(' ')) ?? [])].sort((a, b) => a - b);
}

describe('host pieces', () => {
  it('no-repeat n-gram bans match the literal definition', () => {
    expect(ngramBans([1, 2, 3, 1, 2], 3)).toEqual([3]);
    expect(ngramBans([1, 2, 1, 2, 1], 2)).toEqual([2]);
    expect(ngramBans([4, 5, 4], 1).sort()).toEqual([4, 5]);
    expect(ngramBans([4], 3)).toEqual([]);
    const r = rng(5);
    for (let t = 0; t < 200; t++) {
      const seq = Array.from({ length: 1 + Math.floor(r() * 20) }, () => Math.floor(r() * 4));
      const n = 1 + Math.floor(r() * 4);
      expect(ngramBans(seq, n).sort((a, b) => a - b), `${seq} n=${n}`).toEqual(ngramBansLiteral(seq, n));
    }
  });

  it('min_length counts the prompt, min_new_tokens only the generated tokens', () => {
    expect(eosBanned(config({ min_length: 10 }), 9, 8)).toBe(true);
    expect(eosBanned(config({ min_length: 10 }), 10, 8)).toBe(false);
    expect(eosBanned(config({ min_new_tokens: 3 }), 10, 8)).toBe(true);
    expect(eosBanned(config({ min_new_tokens: 3 }), 11, 8)).toBe(false);
    expect(eosBanned(config({ min_new_tokens: 3, eos_token_id: [] }), 8, 8)).toBe(false);
  });

  it('top-k keeps ties with the k-th value; top-p count equals the ascending-cumsum definition', () => {
    const row = Float32Array.from([1, 3, 2, 3, 0]);
    topKRow(row, 2);
    expect(Array.from(row)).toEqual([-Infinity, 3, -Infinity, 3, -Infinity]);
    const tied = Float32Array.from([1, 3, 2, 2, 0]);
    topKRow(tied, 2);
    expect(Array.from(tied)).toEqual([-Infinity, 3, 2, 2, -Infinity]);
    for (let t = 0; t < 100; t++) {
      const x = randn(17, t + 1, 2);
      const p = [0.05, 0.3, 0.5, 0.9, 0.99][t % 5]!;
      const filtered = Float32Array.from(x);
      topPRow(filtered, p);
      const kept = filtered.filter((v) => v > -Infinity).length;
      expect(topPCount(sortRow(x).values, p)).toBe(kept);
    }
  });

  it('draws follow the probabilities, reproducibly', () => {
    const values = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const ids = [7, 8, 9];
    const count = (seed: number) => {
      const g = new Xoshiro128(seed);
      const n = new Map<number, number>();
      for (let i = 0; i < 20000; i++) {
        const t = drawToken(values, ids, g);
        n.set(t, (n.get(t) ?? 0) + 1);
      }
      return n;
    };
    const n = count(1);
    expect(Math.abs(n.get(7)! / 20000 - 0.5)).toBeLessThan(0.015);
    expect(Math.abs(n.get(8)! / 20000 - 0.3)).toBeLessThan(0.015);
    expect(Math.abs(n.get(9)! / 20000 - 0.2)).toBeLessThan(0.015);
    expect(count(1)).toEqual(n);
    expect(count(2)).not.toEqual(n);
    expect(drawToken([0, -Infinity], [4, 5], new Xoshiro128(3))).toBe(4);
  });

  it('the PRNG is uniform in [0, 1) and seeds differ', () => {
    const g = new Xoshiro128(42);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const u = g.next();
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    expect(Math.abs(sum / 10000 - 0.5)).toBeLessThan(0.01);
    expect(new Xoshiro128(1).next()).not.toBe(new Xoshiro128(2).next());
    expect(new Xoshiro128(2 ** 40).next()).not.toBe(new Xoshiro128(0).next());
    expect(() => new Xoshiro128(0.5)).toThrow(/integer/);
    expect(softmaxOf([-Infinity, -Infinity])).toEqual(Float64Array.from([0.5, 0.5]));
  });
});

describe('GPU processors equal the whole-row references', () => {
  const V = 1001;
  const settings: [string, Partial<GenerationConfig>, boolean][] = [
    ['repetition penalty', { repetition_penalty: 1.3 }, false],
    ['repetition penalty below 1', { repetition_penalty: 0.7 }, false],
    ['no-repeat 3-grams + min_new_tokens (two eos ids)', { no_repeat_ngram_size: 3, min_new_tokens: 20, eos_token_id: [3, 900] }, false],
    ['everything, sampling (temperature)', { repetition_penalty: 1.2, no_repeat_ngram_size: 2, min_length: 30, temperature: 0.6, top_k: 0 }, true],
  ];
  for (const [name, o, sampling] of settings) {
    it(name, async () => {
      const c = config(o);
      const R = 3;
      const r = rng(R + name.length);
      const sequences = Array.from({ length: R }, (_, i) => Array.from({ length: 12 + i * 5 }, () => Math.floor(r() * 12) * 83));
      const logits = randn(R * V, name.length, 3);
      const t = Tensor.from(gpu, logits, [R, V]);
      processLogitsGpu(t, sequences, 10, c, sampling);
      const got = (await t.read()) as Float32Array;
      t.dispose();
      for (let i = 0; i < R; i++) {
        const want = logits.slice(i * V, (i + 1) * V);
        processRowCpu(want, sequences[i]!, 10, { ...c, repetition_penalty: Math.fround(c.repetition_penalty) }, sampling);
        for (let j = 0; j < V; j++) {
          const g = got[i * V + j]!;
          const w = want[j]!;
          if (w === -Infinity) expect(g, `row ${i} id ${j}`).toBe(-Infinity);
          else expect(Math.abs(g - w), `row ${i} id ${j}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w)));
        }
      }
    });
  }

  it('leaves the scores alone when nothing applies', async () => {
    const logits = randn(2 * 33, 4);
    const t = Tensor.from(gpu, logits, [2, 33]);
    processLogitsGpu(t, [[1, 2], [3, 4]], 2, config({}), false);
    expect(Array.from(await t.read())).toEqual(Array.from(logits));
    t.dispose();
    expect(() => processLogitsGpu(t, [[1]], 1, config({}), false)).toThrow();
  });
});
