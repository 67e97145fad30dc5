/**
 * The one-call API on every fixture checkpoint, from image files to text: captions, VQA and batches equal the
 * transformers generations of the fixture (same token ids), streaming deltas add up to the text, stop
 * strings cut it, bad input fails cleanly without leaking GPU memory.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenEvent } from '../../src/generation/types.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { Blip2, DEFAULT_MAX_NEW_TOKENS } from '../../src/pipeline.js';
import { vqaPrompt, chatPrompt } from '../../src/processing/prompts.js';
import { Tensor } from '../../src/tensor.js';
import { captionCases, greedyAnswerOf, questionCases, questionOf } from '../support/cases.js';
import { loadFixtures, readIntegers, type FixtureCase } from '../support/fixtures.js';

/** Any question: the chat test compares with the model's own generate() on the chat prompt. */
const QUESTION = 'what is in the picture?';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await Gpu.create();
});
afterAll(() => gpu?.destroy());

for (const fx of loadFixtures()) {
  const image = (c: FixtureCase): string => fx.imagePath(c);
  const N = fx.maxNewTokens;
  const cases = fx.manifest.cases;
  const caption = captionCases(fx)[0] ?? cases[0]!;
  const question = questionCases(fx).at(-1) ?? cases.at(-1)!;
  const finishOf = (c: FixtureCase) => (c.greedy.new_tokens.some((t) => fx.eosTokenIds.includes(t)) ? 'eos' : 'length');

  describe(`Blip2 pipeline: ${fx.name}`, () => {
    let blip2: Blip2;
    let baseline: number;
    beforeAll(async () => {
      blip2 = await Blip2.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      await gpu.sync();
      baseline = gpu.stats().liveBytes;
    });
    afterAll(() => blip2?.dispose());

    it('caption() gives transformers\' greedy caption', async () => {
      const c = caption;
      expect(c.prompt).toBe('');
      const r = await blip2.caption(image(c), { max_new_tokens: N });
      expect(r.token_ids).toEqual(c.greedy.new_tokens);
      expect(r.text).toBe(greedyAnswerOf(c));
      expect(r.finish_reason).toBe(finishOf(c));
      expect(r.alternatives).toBeUndefined();
    });

    it('ask() uses "Question: {q} Answer:" and gives the greedy answer; beams give HF\'s three best', async () => {
      const c = question;
      const q = questionOf(c)!;
      expect(c.prompt).toBe(vqaPrompt(q));
      const r = await blip2.ask(image(c), q, { max_new_tokens: N });
      expect(r.token_ids).toEqual(c.greedy.new_tokens);
      expect(r.text).toBe(greedyAnswerOf(c));
      const beams = await blip2.ask(image(c), q, { max_new_tokens: N, num_beams: 3, num_return_sequences: 3 });
      const ex = await fx.expected();
      const want = (await readIntegers(ex, `${c.name}.beam3.sequences`)).length / 3;
      const flat = await readIntegers(ex, `${c.name}.beam3.sequences`);
      await ex.close();
      expect(beams.alternatives!.map((a) => a.token_ids)).toEqual([0, 1, 2].map((i) => flat.slice(i * want + c.input_ids.length, (i + 1) * want)));
      expect(beams.alternatives!.map((a) => a.text)).toEqual(c.beam.beam3_texts.map((t) => greedyAnswerOf(c, t)));
      expect(beams.score).toBe(beams.alternatives![0]!.score);
    });

    it('generate() runs several images and prompts as one left-padded batch', async () => {
      // Up to four cases, prompts of both kinds: the batch is left-padded.
      const picked = cases.slice(-4);
      const results = await blip2.generate({ images: picked.map(image), prompts: picked.map((c) => c.prompt), max_new_tokens: N });
      expect(results.map((r) => r.input)).toEqual(picked.map((_, i) => i));
      expect(results.map((r) => r.token_ids)).toEqual(picked.map((c) => c.greedy.new_tokens));
    });

    it('chat() puts the earlier turns in the prompt', async () => {
      const c = question;
      const turns = [{ question: 'what animal is it?', answer: 'a cat' }];
      const r = await blip2.chat(image(c), turns, QUESTION, { max_new_tokens: 5 });
      const batch = await blip2.processor.process({ images: [image(c)], text: [chatPrompt(turns, QUESTION)] });
      expect(batch.inputIds[0]!.length).toBeGreaterThan(c.input_ids.length);
      const pixel_values = Tensor.from(gpu, batch.pixelValues, batch.pixelShape);
      const direct = await blip2.model.generate({ pixel_values, input_ids: batch.inputIds, generation_config: blip2.generationConfig, max_new_tokens: 5 });
      pixel_values.dispose();
      expect(r.token_ids).toEqual(direct.new_tokens[0]);
    });

    it('streams every token; the deltas add up to the text', async () => {
      const c = captionCases(fx).at(-1) ?? caption;
      const events: TokenEvent[] = [];
      const r = await blip2.caption(image(c), { max_new_tokens: N, onToken: (e) => events.push(e) });
      expect(r.token_ids).toEqual(c.greedy.new_tokens);
      expect(events.map((e) => e.token)).toEqual(r.token_ids);
      expect(events.map((e) => e.text).join('').trim()).toBe(r.text);
      expect(events.at(-1)!.finish_reason).toBe(finishOf(c));
    });

    const full = greedyAnswerOf(caption);
    it.skipIf(full.length < 6)('stop strings end the text right before them', async () => {
      const c = caption;
      // Three characters from the middle of the caption: the text must end right before their first occurrence.
      const at = Math.floor(full.length / 2) - 1;
      const stop = full.slice(at, at + 3);
      const r = await blip2.caption(image(c), { max_new_tokens: N, stop: [stop] });
      expect(r.finish_reason).toBe('stop');
      expect(r.text).toBe(full.slice(0, full.indexOf(stop)).trim());
      expect(r.token_ids).toEqual(c.greedy.new_tokens.slice(0, r.token_ids.length));
    });

    it(`defaults to ${DEFAULT_MAX_NEW_TOKENS} new tokens, not HF's max_length 20 that a VQA prompt would exhaust`, async (ctx) => {
      if (question.input_ids.length + DEFAULT_MAX_NEW_TOKENS > blip2.model.config.text_config.max_position_embeddings) return ctx.skip();
      const r = await blip2.ask(image(question), questionOf(question)!, { eos_token_id: [] });
      expect(r.token_ids).toHaveLength(DEFAULT_MAX_NEW_TOKENS);
    });

    it('bad input fails with a clear error and leaks nothing', async () => {
      await expect(blip2.caption(join(fx.dir, 'missing.png'))).rejects.toThrow();
      await expect(blip2.caption(image(caption), { num_beams: 2, onToken: () => {} })).rejects.toThrow(/streaming/);
      const positions = blip2.model.config.text_config.max_position_embeddings;
      await expect(blip2.caption(image(caption), { max_new_tokens: positions })).rejects.toThrow(/positions/);
      await expect(blip2.generate({ images: [image(caption)], prompts: ['a', 'b'] })).rejects.toThrow(/prompt/);
      await expect(blip2.caption(image(caption), { temperature: -1, do_sample: true })).rejects.toThrow(/temperature/);
      await gpu.sync();
      expect(gpu.stats().liveBytes).toBe(baseline);
    });
  });
}
