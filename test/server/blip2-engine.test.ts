/**
 * The real BLIP-2 engine (every fixture checkpoint, f32) behind the engine interface and the server: its
 * tokens must be transformers' own (cases.json).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/server/blip2-engine.js';
import { EngineInputError, defaultGenerationParams, type Engine } from '../../src/server/engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { captionCases, dataUrlOf, greedyAnswerOf, greedyTokensOf, imageBytesOf, questionCases } from '../support/cases.js';
import { loadFixtures } from '../support/fixtures.js';

for (const fx of loadFixtures()) {
  const cases = fx.manifest.cases;
  const caption = captionCases(fx)[0] ?? cases[0]!;
  const question = questionCases(fx).at(-1) ?? cases.at(-1)!;
  const imageOf = (c: (typeof cases)[number]) => imageBytesOf(fx, c);
  const N = fx.maxNewTokens;

  describe(`Blip2Engine: ${fx.name}`, () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await createEngine({ modelDir: fx.dir, modelId: fx.name, dtype: 'f32' });
    });
    afterAll(async () => {
      await engine?.dispose();
    });

    it('batches a caption and a question and matches transformers greedy tokens, streaming the same text', async () => {
      const picked = [caption, question];
      const streamed = ['', ''];
      const results = await engine.generate(
        picked.map((c) => ({ image: imageOf(c), prompt: c.prompt, params: defaultGenerationParams({ maxNewTokens: N }) })),
        { onToken: (e) => (streamed[e.request] += e.text) },
      );
      results.forEach((r, i) => {
        const c = picked[i]!;
        expect(r.sequences[0]!.tokenIds).toEqual(greedyTokensOf(fx, c));
        expect(r.sequences[0]!.text).toBe(greedyAnswerOf(c));
        expect(streamed[i]).toBe(r.sequences[0]!.text);
        expect(r.completionTokens).toBe(r.sequences[0]!.tokenIds.length);
      });
      expect(results.map((r) => r.promptTokens)).toEqual(picked.map((c) => c.input_ids.length));
    });

    it('returns the three beams best first', async () => {
      const c = question;
      const [r] = await engine.generate([{ image: imageOf(c), prompt: c.prompt, params: defaultGenerationParams({ maxNewTokens: N, numBeams: 3, n: 3 }) }]);
      expect(r!.sequences.map((s) => s.text)).toEqual(c.beam.beam3_texts.map((t) => greedyAnswerOf(c, t)));
    });

    it('names the request with a bad image', async () => {
      const good = { image: imageOf(caption), prompt: '', params: defaultGenerationParams({ maxNewTokens: 2 }) };
      const err = await engine.generate([good, { ...good, image: new TextEncoder().encode('not an image') }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineInputError);
      expect((err as EngineInputError).requestIndex).toBe(1);
    });

    it('serves the model through the OpenAI API', async () => {
      const server = await Blip2Server.start(engine, { port: 0 });
      try {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
        const c = caption;
        const r = await client.chat.completions.create({
          model: fx.name,
          max_tokens: N,
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrlOf(fx, c) } }] }],
        });
        expect(r.choices[0]!.message.content).toBe(greedyAnswerOf(c));
        expect(r.usage?.prompt_tokens).toBe(c.input_ids.length);
      } finally {
        await server.close();
      }
    });
  });
}
