/**
 * The search loops against host-only references (reference-search.ts) on a fake model whose logits depend
 * on each row's whole history: greedy, beam search (every early_stopping mode, length penalties, several
 * eos ids, batches) and seeded sampling must pick exactly the same tokens through the GPU path (argmax,
 * log-softmax + per-row top-k, top-k sampling, GPU processors). Beam scores agree to 1e-5 (GPU vs host
 * log-softmax rounding).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { beamSearch } from '../../src/generation/beam-search.js';
import { generationConfigFromJson, type GenerationOptions } from '../../src/generation/config.js';
import { decodeLoop } from '../../src/generation/decode-loop.js';
import { resolveGenerationConfig } from '../../src/generation/generate.js';
import { Xoshiro128 } from '../../src/generation/rng.js';
import type { SearchResult, TokenDecoder, TokenEvent } from '../../src/generation/types.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { testGpu } from '../helpers.js';
import { byteDecoder } from './byte-decoder.js';
import { FakeStepModel, fakeLogitsFn, type LogitsFn } from './fake-model.js';
import { referenceBeamSearch, referenceDecode } from './reference-search.js';

const V = 41;
const EOS = 5;
const PAD = 1;
const BASE = generationConfigFromJson(null, { bos_token_id: 2, eos_token_id: EOS, pad_token_id: PAD });
const PROMPTS = [
  [2, 7, 9, 11],
  [2, 30, 12, 13],
  [1, 2, 20, 21],
];

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

interface Extra {
  tokenizer?: TokenDecoder;
  onToken?: (e: TokenEvent) => void;
  outputStepLogits?: boolean;
  vocab?: number;
}

async function run(fn: LogitsFn, prompts: number[][], options: GenerationOptions, extra: Extra = {}): Promise<{ out: SearchResult; model: FakeStepModel }> {
  const config = resolveGenerationConfig(BASE, options);
  const model = new FakeStepModel(gpu, prompts, extra.vocab ?? V, fn);
  const before = gpu.stats().liveBytes;
  const args = { model, prompts, config, ...extra };
  const out = config.num_beams > 1 ? await beamSearch(args) : await decodeLoop(args);
  await gpu.sync();
  expect(gpu.stats().liveBytes, 'GPU memory left behind').toBe(before);
  return { out, model };
}

describe('greedy search', () => {
  const cases: [string, GenerationOptions][] = [
    ['plain', { max_new_tokens: 10 }],
    ['repetition penalty', { max_new_tokens: 10, repetition_penalty: 1.7 }],
    ['no-repeat 2-grams, min_new_tokens', { max_new_tokens: 12, no_repeat_ngram_size: 2, min_new_tokens: 4 }],
    ['max_length counts the prompt', { max_length: 9 }],
    ['min_length', { max_new_tokens: 8, min_length: 10 }],
  ];
  for (const [name, options] of cases) {
    it(`${name}: equals the host reference, finished rows padded`, async () => {
      const fn = fakeLogitsFn(V, { eos: EOS });
      const { out, model } = await run(fn, PROMPTS, options);
      const ref = referenceDecode(fn, PROMPTS, resolveGenerationConfig(BASE, options));
      expect(out.sequences).toEqual(ref.sequences);
      expect(out.new_tokens).toEqual(ref.newTokens);
      expect(model.prefills).toBe(1);
      expect(model.disposed).toBe(false); // the loop does not own the model; generate() disposes it
      out.new_tokens.forEach((t, r) => expect(out.finish_reasons[r]).toBe(t[t.length - 1] === EOS ? 'eos' : 'length'));
    });
  }

  it('rows stop independently and the loop ends when all have', async () => {
    const fn = fakeLogitsFn(V, { eos: EOS, eosBoost: 8 });
    const { out } = await run(fn, PROMPTS, { max_new_tokens: 30 });
    const lengths = out.new_tokens.map((t) => t.length);
    expect(Math.max(...lengths)).toBeLessThan(30);
    expect(new Set(lengths).size).toBeGreaterThan(1);
    out.sequences.forEach((s, r) => {
      expect(s.length).toBe(4 + Math.max(...lengths));
      expect(s.slice(4 + lengths[r]!).every((t) => t === PAD)).toBe(true);
    });
  });

  it('returns the raw step logits when asked', async () => {
    const fn = fakeLogitsFn(V);
    const { out } = await run(fn, [PROMPTS[0]!], { max_new_tokens: 3, eos_token_id: null, repetition_penalty: 2 }, { outputStepLogits: true });
    expect(out.step_logits).toHaveLength(3);
    expect(Array.from(out.step_logits![1]!)).toEqual(Array.from(fn(out.sequences[0]!.slice(0, 5))));
  });

  it('one step even when the prompt already reaches max_length (as HF)', async () => {
    const { out } = await run(fakeLogitsFn(V), [PROMPTS[0]!], { max_length: 2 });
    expect(out.new_tokens[0]).toHaveLength(1);
  });
});

describe('beam search', () => {
  const cases: [string, GenerationOptions][] = [
    ['3 beams', { num_beams: 3, max_new_tokens: 8 }],
    ['3 beams, 3 returned', { num_beams: 3, num_return_sequences: 3, max_new_tokens: 8 }],
    ['early_stopping true', { num_beams: 4, num_return_sequences: 2, max_new_tokens: 10, early_stopping: true }],
    ['early_stopping never, length_penalty 2', { num_beams: 3, num_return_sequences: 3, max_new_tokens: 9, early_stopping: 'never', length_penalty: 2 }],
    ['length_penalty 0', { num_beams: 2, num_return_sequences: 2, max_new_tokens: 9, length_penalty: 0 }],
    ['length_penalty -0.5', { num_beams: 3, max_new_tokens: 9, length_penalty: -0.5 }],
    ['two eos ids', { num_beams: 3, num_return_sequences: 3, max_new_tokens: 8, eos_token_id: [EOS, 6] }],
    ['processors on log-probs', { num_beams: 3, num_return_sequences: 2, max_new_tokens: 8, repetition_penalty: 1.3, no_repeat_ngram_size: 2, min_new_tokens: 3 }],
  ];
  for (const [name, options] of cases) {
    it(`${name}: equals the whole-vocabulary reference`, async () => {
      const fn = fakeLogitsFn(V, { eos: EOS, eosBoost: 4 });
      const { out } = await run(fn, PROMPTS, options);
      const ref = referenceBeamSearch(fn, V, PROMPTS, resolveGenerationConfig(BASE, options));
      expect(out.sequences).toEqual(ref.sequences);
      out.sequences_scores!.forEach((s, i) => expect(Math.abs(s - ref.scores[i]!)).toBeLessThan(1e-5));
      // Returned best first within each prompt.
      const nrs = options.num_return_sequences ?? 1;
      for (let i = 0; i + 1 < out.sequences_scores!.length; i++) if ((i + 1) % nrs !== 0) expect(out.sequences_scores![i]!).toBeGreaterThanOrEqual(out.sequences_scores![i + 1]!);
    });
  }

  it('hypotheses that stop early are padded, their score uses their own length', async () => {
    const fn = fakeLogitsFn(V, { eos: EOS, eosBoost: 5 });
    const { out } = await run(fn, [PROMPTS[0]!], { num_beams: 3, num_return_sequences: 3, max_new_tokens: 12 });
    const lengths = out.new_tokens.map((t) => t.length);
    expect(new Set(lengths).size).toBeGreaterThan(1);
    out.sequences.forEach((s, i) => {
      expect(s.length).toBe(4 + Math.max(...lengths));
      expect(s.slice(4, 4 + lengths[i]!)).toEqual(out.new_tokens[i]);
      expect(s.slice(4 + lengths[i]!).every((t) => t === PAD)).toBe(true);
    });
  });

  it('refuses streaming (as HF) and oversized beams', async () => {
    const fn = fakeLogitsFn(V);
    await expect(run(fn, [PROMPTS[0]!], { num_beams: 2 }, { onToken: () => {} })).rejects.toThrow(/streaming/);
    await expect(run(fakeLogitsFn(300), [PROMPTS[0]!], { num_beams: 129 }, { vocab: 300 })).rejects.toThrow(/num_beams 129/);
  });
});

describe('sampling', () => {
  const sampled = async (options: GenerationOptions, prompts = PROMPTS) => (await run(fakeLogitsFn(V, { eos: EOS, scale: 1.5 }), prompts, { do_sample: true, max_new_tokens: 10, ...options })).out;

  it('same seed, same tokens; another seed, other tokens', async () => {
    const a = await sampled({ seed: 7 });
    const b = await sampled({ seed: 7 });
    const c = await sampled({ seed: 8 });
    expect(a.sequences).toEqual(b.sequences);
    expect(c.sequences).not.toEqual(a.sequences);
  });

  it('row_seeds: each prompt draws from its own stream, so it samples the same alone or batched', async () => {
    const seeds = [5, 9, 13];
    const together = await sampled({ row_seeds: seeds, num_return_sequences: 2 });
    for (let b = 0; b < PROMPTS.length; b++) {
      const alone = await sampled({ row_seeds: [seeds[b]!], num_return_sequences: 2 }, [PROMPTS[b]!]);
      expect(together.new_tokens.slice(2 * b, 2 * b + 2)).toEqual(alone.new_tokens);
      // One prompt: its stream is the one `seed` gives.
      expect((await sampled({ seed: seeds[b]!, num_return_sequences: 2 }, [PROMPTS[b]!])).new_tokens).toEqual(alone.new_tokens);
    }
    expect(new Set(together.new_tokens.map((t) => t.join(','))).size).toBeGreaterThan(3);
    await expect(sampled({ row_seeds: [1, 2] })).rejects.toThrow(/row_seeds has 2 seeds for 3 prompts/);
  });

  it('top_k 1 is greedy', async () => {
    const fn = fakeLogitsFn(V, { eos: EOS, scale: 1.5 });
    const s = await sampled({ seed: 3, top_k: 1 });
    const g = referenceDecode(fn, PROMPTS, resolveGenerationConfig(BASE, { max_new_tokens: 10 }));
    expect(s.sequences).toEqual(g.sequences);
  });

  const settings: [string, GenerationOptions][] = [
    ['default top_k 50 (above V: all candidates)', {}],
    ['temperature 0.7, top_k 10, top_p 0.9', { temperature: 0.7, top_k: 10, top_p: 0.9 }],
    ['top_k 0 (whole rows), top_p 0.5, repetition penalty', { top_k: 0, top_p: 0.5, repetition_penalty: 1.4 }],
    ['3 samples per prompt', { num_return_sequences: 3, top_k: 6 }],
  ];
  for (const [name, options] of settings) {
    it(`${name}: the same draws as the host reference`, async () => {
      const fn = fakeLogitsFn(V, { eos: EOS, scale: 1.5 });
      const s = await sampled({ seed: 11, ...options });
      const ref = referenceDecode(fn, PROMPTS, resolveGenerationConfig(BASE, { do_sample: true, max_new_tokens: 10, ...options }), new Xoshiro128(11));
      expect(s.sequences).toEqual(ref.sequences);
    });
  }
});

describe('stop strings and streaming through the loop', () => {
  it('a row stops at its stop string; the stream never shows it', async () => {
    const fn = fakeLogitsFn(V, { scale: 2 });
    const free = await run(fn, PROMPTS, { max_new_tokens: 12, eos_token_id: [] }, { tokenizer: byteDecoder });
    const text0 = byteDecoder.decode(free.out.new_tokens[0]!);
    const stop = text0.slice(3, 5);
    const events: TokenEvent[] = [];
    const { out } = await run(fn, PROMPTS, { max_new_tokens: 12, eos_token_id: [], stop: [stop] }, { tokenizer: byteDecoder, onToken: (e) => events.push(e) });
    const first = byteDecoder.decode(out.new_tokens[0]!);
    expect(first.indexOf(stop)).toBeGreaterThanOrEqual(0);
    expect(byteDecoder.decode(out.new_tokens[0]!.slice(0, -1))).not.toContain(stop); // stopped at the first match
    expect(out.finish_reasons[0]).toBe('stop');
    const streamed = events.filter((e) => e.row === 0).map((e) => e.text).join('');
    expect(streamed).toBe(first.slice(0, first.indexOf(stop)));
    expect(events.filter((e) => e.row === 0)).toHaveLength(out.new_tokens[0]!.length);
    expect(events.filter((e) => e.finish_reason !== undefined)).toHaveLength(3);
  });

  it('stop strings without a tokenizer are refused', async () => {
    await expect(run(fakeLogitsFn(V), PROMPTS, { stop: ['x'] })).rejects.toThrow(/tokenizer/);
  });

  it('beam search stops hypotheses at stop strings too', async () => {
    const fn = fakeLogitsFn(V, { scale: 2 });
    const { out } = await run(fn, [PROMPTS[0]!], { num_beams: 3, num_return_sequences: 3, max_new_tokens: 10, eos_token_id: [EOS], stop: ['a', 'b', 'c'] }, { tokenizer: byteDecoder });
    for (const [i, t] of out.new_tokens.entries()) {
      if (out.finish_reasons[i] !== 'stop') continue;
      expect(/[abc]/.test(byteDecoder.decode(t))).toBe(true);
      expect(/[abc]/.test(byteDecoder.decode(t.slice(0, -1)))).toBe(false);
    }
    expect(out.finish_reasons).toContain('stop');
  });
});
