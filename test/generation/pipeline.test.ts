/**
 * The one-call API on the tiny checkpoint, from image files to text: captions, VQA and batches equal the
 * transformers generations of the fixture (same token ids), streaming deltas add up to the text, stop
 * strings cut it, bad input fails cleanly without leaking GPU memory.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenEvent } from '../../src/generation/types.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { Blip2, DEFAULT_MAX_NEW_TOKENS } from '../../src/pipeline.js';
import { vqaPrompt, chatPrompt } from '../../src/processing/prompts.js';
import { Tensor } from '../../src/tensor.js';
import { TINY, fixturePath } from '../paths.js';
import { loadFixtures, readIntegers, type FixtureCase } from '../support/fixtures.js';

const fx = loadFixtures().find((f) => f.name === 'tiny-blip2')!;
const byName = (n: string): FixtureCase => fx.manifest.cases.find((c) => c.name === n)!;
const image = (c: FixtureCase): string => fixturePath('tiny-blip2', c.image_file);
const QUESTION = 'what is in the picture?';

let gpu: Gpu;
let blip2: Blip2;
let baseline: number;
beforeAll(async () => {
  gpu = await Gpu.create();
  blip2 = await Blip2.fromPretrained(TINY, { gpu, dtype: 'f32' });
  await gpu.sync();
  baseline = gpu.stats().liveBytes;
});
afterAll(() => {
  blip2?.dispose();
  gpu?.destroy();
});

describe('Blip2 pipeline', () => {
  it('caption() gives transformers\' greedy caption', async () => {
    const c = byName('case0');
    expect(c.prompt).toBe('');
    const r = await blip2.caption(image(c), { max_new_tokens: 12 });
    expect(r.token_ids).toEqual(c.greedy.new_tokens);
    expect(r.text).toBe(c.greedy.text.trim());
    expect(r.finish_reason).toBe('length');
    expect(r.alternatives).toBeUndefined();
  });

  it('ask() uses "Question: {q} Answer:" and gives the greedy answer; beams give HF\'s three best', async () => {
    const c = byName('case3');
    expect(c.prompt).toBe(vqaPrompt(QUESTION));
    const r = await blip2.ask(image(c), QUESTION, { max_new_tokens: 12 });
    expect(r.token_ids).toEqual(c.greedy.new_tokens);
    expect(c.greedy.text.endsWith(r.text)).toBe(true);
    const beams = await blip2.ask(image(c), QUESTION, { max_new_tokens: 12, num_beams: 3, num_return_sequences: 3 });
    const ex = await fx.expected();
    const want = (await readIntegers(ex, `${c.name}.beam3.sequences`)).length / 3;
    const flat = await readIntegers(ex, `${c.name}.beam3.sequences`);
    await ex.close();
    expect(beams.alternatives!.map((a) => a.token_ids)).toEqual([0, 1, 2].map((i) => flat.slice(i * want + c.input_ids.length, (i + 1) * want)));
    expect(beams.alternatives!.map((a) => a.text)).toEqual(c.beam.beam3_texts.map((t) => t.slice(c.prompt.length).trim()));
    expect(beams.score).toBe(beams.alternatives![0]!.score);
  });

  it('generate() runs several images and prompts as one left-padded batch', async () => {
    const cases = ['case0', 'case3', 'case4', 'case5'].map(byName);
    const results = await blip2.generate({ images: cases.map(image), prompts: cases.map((c) => c.prompt), max_new_tokens: 12 });
    expect(results.map((r) => r.input)).toEqual([0, 1, 2, 3]);
    expect(results.map((r) => r.token_ids)).toEqual(cases.map((c) => c.greedy.new_tokens));
  });

  it('chat() puts the earlier turns in the prompt', async () => {
    const c = byName('case1');
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
    const c = byName('case4');
    const events: TokenEvent[] = [];
    const r = await blip2.caption(image(c), { max_new_tokens: 12, onToken: (e) => events.push(e) });
    expect(events.map((e) => e.token)).toEqual(r.token_ids);
    expect(events.map((e) => e.text).join('').trim()).toBe(r.text);
    expect(events.at(-1)!.finish_reason).toBe('length');
  });

  it('stop strings end the text right before them', async () => {
    const c = byName('case0');
    const full = c.greedy.text.trim();
    const stop = full.slice(6, 9);
    const r = await blip2.caption(image(c), { max_new_tokens: 12, stop: [stop] });
    expect(r.finish_reason).toBe('stop');
    expect(r.text).toBe(full.slice(0, full.indexOf(stop)).trim());
    expect(r.token_ids).toEqual(c.greedy.new_tokens.slice(0, r.token_ids.length));
  });

  it(`defaults to ${DEFAULT_MAX_NEW_TOKENS} new tokens, not HF's max_length 20 that a VQA prompt would exhaust`, async () => {
    const r = await blip2.ask(image(byName('case1')), QUESTION, { eos_token_id: [] });
    expect(r.token_ids).toHaveLength(DEFAULT_MAX_NEW_TOKENS);
  });

  it('bad input fails with a clear error and leaks nothing', async () => {
    await expect(blip2.caption(fixturePath('tiny-blip2', 'missing.png'))).rejects.toThrow();
    await expect(blip2.caption(image(byName('case0')), { num_beams: 2, onToken: () => {} })).rejects.toThrow(/streaming/);
    await expect(blip2.caption(image(byName('case0')), { max_new_tokens: 500 })).rejects.toThrow(/positions/);
    await expect(blip2.generate({ images: [image(byName('case0'))], prompts: ['a', 'b'] })).rejects.toThrow(/prompt/);
    await expect(blip2.caption(image(byName('case0')), { temperature: -1, do_sample: true })).rejects.toThrow(/temperature/);
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(baseline);
  });
});
