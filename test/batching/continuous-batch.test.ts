/**
 * Continuous batching on every fixture checkpoint (f32): requests that join a running decode batch at
 * staggered steps, with mixed prompts and answer lengths, get exactly the tokens they get alone; sampled
 * requests keep their seed's draws, also when one of their sequences ends before the others; the slots' own
 * events (the cache growing, sessions of other sizes, idle rows reset) happen on the way.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinuousBatch, type BatchResult } from '../../src/batching/continuous-batch.js';
import type { GenerationOptions } from '../../src/generation/config.js';
import { resolveGenerationConfig } from '../../src/generation/generate.js';
import { Blip2 } from '../../src/pipeline.js';
import { loadImage, type RawPixels } from '../../src/processing/index.js';
import { loadFixtures } from '../support/fixtures.js';

interface Planned {
  image: RawPixels;
  prompt: string;
  options: GenerationOptions;
  /** Decode step before which the request joins (or later, when no slot is free). */
  at: number;
}

interface Outcome {
  results: BatchResult[];
  joinedAt: number[];
  steps: number;
  stats: ContinuousBatch['cacheStats'];
}

/** Joins each request at its step (in order, as slots allow) and steps until every request is done. */
async function runStaggered(blip2: Blip2, plan: readonly Planned[], slots: number): Promise<Outcome> {
  const batch = new ContinuousBatch(blip2, { slots });
  const results: BatchResult[] = [];
  const joinedAt: number[] = [];
  let next = 0;
  let step = 0;
  try {
    while (next < plan.length || batch.runningRows > 0) {
      const group: Parameters<ContinuousBatch['join']>[0][number][] = [];
      let free = batch.freeRows;
      while (next < plan.length && plan[next]!.at <= step) {
        const p = plan[next]!;
        const config = resolveGenerationConfig(blip2.generationConfig, p.options);
        const rows = config.do_sample ? config.num_return_sequences : 1;
        if (rows > free) break;
        free -= rows;
        const i = next++;
        joinedAt[i] = step;
        group.push({ image: p.image, prompt: p.prompt, config, onDone: (r) => (results[i] = r) });
      }
      if (group.length > 0) await batch.join(group);
      await batch.step();
      step++;
    }
    return { results, joinedAt, steps: step, stats: { ...batch.cacheStats } };
  } finally {
    batch.dispose();
  }
}

for (const fixture of loadFixtures()) {
  describe(`continuous batching on ${fixture.name}`, () => {
    let blip2: Blip2;
    let images: RawPixels[];
    let context: number;

    beforeAll(async () => {
      blip2 = await Blip2.fromPretrained(fixture.dir, { dtype: 'f32' });
      const files = [...new Set(fixture.manifest.cases.map((c) => c.image_file))];
      images = await Promise.all(files.map((f) => loadImage(new Uint8Array(readFileSync(join(fixture.dir, f))))));
      context = blip2.model.config.text_config.max_position_embeddings;
    });

    afterAll(() => blip2?.dispose());

    const promptLength = (prompt: string) => blip2.processor.encodePrompt(prompt).length;
    const alone = async (p: Planned) => blip2.generate({ ...p.options, images: [p.image], prompts: [p.prompt] });

    it('gives greedy requests that join and leave at staggered steps the tokens they get alone', async () => {
      // A caption first, then longer prompts, answers from 1 token (done at the prompt pass) up (the cache grows),
      // more requests than slots (rows leave, slots are reused, the step's session changes size).
      const prompts = ['', 'Question: what is in the picture? Answer:', 'Question: is it red? Answer:', 'a photo of', 'Question: what is the man on the left holding in his hand? Answer:'];
      const lengths = [1, 9, 3, 14, 5, 11, 2, 7, 12, 4];
      const plan: Planned[] = lengths.map((n, i) => {
        const prompt = prompts[i % prompts.length]!;
        const max = Math.max(1, Math.min(n, context - promptLength(prompt)));
        return { image: images[i % images.length]!, prompt, options: { max_new_tokens: max }, at: i === 0 ? 0 : 1 + 2 * i };
      });
      const out = await runStaggered(blip2, plan, 3);
      for (const [i, p] of plan.entries()) {
        const [want] = await alone(p);
        expect(out.results[i]!.new_tokens, `request ${i} (joined at step ${out.joinedAt[i]})`).toEqual([want!.token_ids]);
        expect(out.results[i]!.finish_reasons).toEqual([want!.finish_reason]);
      }
      expect(out.stats.admitted).toBe(lengths.filter((n) => n > 1).length);
      expect(out.stats.grows).toBeGreaterThan(0);
      expect(out.stats.switches).toBeGreaterThan(0);
    });

    it('keeps a long row exact beside an idle row whose slot runs on until it is reset', async () => {
      // Slot 0: a question (the longer prompt) that ends after 3 tokens; slot 1: a caption, prefilled on its own a
      // step later, that decodes to its cache's end. Slot 0 stays in the step's session, idle, and its cache length
      // (its prompt's columns plus one per step) would pass the end of the cache, sized for the caption.
      const question = 'Question: what is in the picture? Answer:';
      const long = Math.min(40, context - promptLength(''));
      const plan: Planned[] = [
        { image: images[0]!, prompt: question, options: { max_new_tokens: 3, min_new_tokens: 3 }, at: 0 },
        { image: images[1 % images.length]!, prompt: '', options: { max_new_tokens: long, min_new_tokens: long }, at: 1 },
      ];
      const out = await runStaggered(blip2, plan, 2);
      for (const [i, p] of plan.entries()) {
        const [want] = await alone(p);
        expect(out.results[i]!.new_tokens, `request ${i}`).toEqual([want!.token_ids]);
      }
      expect(out.stats.idleResets).toBeGreaterThan(0);
    });

    it('keeps each sampled request on its own seed, next to greedy rows, also when one of its sequences ends early', async () => {
      const question = 'Question: what is in the picture? Answer:';
      const max = Math.min(12, context - promptLength(question));
      const sampled = (seed: number, extra: GenerationOptions = {}): GenerationOptions => ({
        max_new_tokens: max,
        do_sample: true,
        temperature: 1.3,
        num_return_sequences: 3,
        row_seeds: [seed],
        ...extra,
      });
      // An end-of-sequence id that only the first sample draws (early): that sequence leaves the batch while its
      // siblings go on, and the stream still spends its draw on it, as the one-request loop does.
      const free = (await alone({ image: images[0]!, prompt: question, options: sampled(11), at: 0 })).map((r) => r.token_ids);
      const eos = free[0]!.find((t, k) => k >= 1 && !free.slice(1).some((other) => other.slice(0, max).includes(t)));
      expect(eos, 'a token only the first sample draws').toBeDefined();
      const plan: Planned[] = [
        { image: images[1 % images.length]!, prompt: '', options: { max_new_tokens: max }, at: 0 },
        { image: images[0]!, prompt: question, options: sampled(11, { eos_token_id: eos }), at: 1 },
        { image: images[2 % images.length]!, prompt: question, options: sampled(5, { top_k: 0, top_p: 0.9 }), at: 3 },
        { image: images[0]!, prompt: '', options: { max_new_tokens: 3 }, at: 4 },
      ];
      const out = await runStaggered(blip2, plan, 7);
      for (const [i, p] of plan.entries()) {
        const want = await alone(p);
        expect(out.results[i]!.new_tokens, `request ${i}`).toEqual(want.map((r) => r.token_ids));
        expect(out.results[i]!.finish_reasons).toEqual(want.map((r) => r.finish_reason));
      }
      const early = out.results[1]!.new_tokens.map((t) => t.length);
      expect(early[0]).toBeLessThan(Math.max(...early.slice(1)));
    });
  });
}
