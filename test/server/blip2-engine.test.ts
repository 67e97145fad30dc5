/**
 * The real BLIP-2 engine (tiny random-weight checkpoint, f32) behind the engine interface and the server:
 * its tokens must be transformers' own (test/fixtures/tiny-blip2/cases.json).
 */
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/server/blip2-engine.js';
import { EngineInputError, defaultGenerationParams, type Engine } from '../../src/server/engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { TINY, fixturePath } from '../paths.js';

interface FixtureCase {
  image_file: string;
  prompt: string;
  greedy: { new_tokens: number[]; text: string };
  beam: { beam3_texts: string[] };
}

const cases = (JSON.parse(readFileSync(fixturePath('tiny-blip2', 'cases.json'), 'utf8')) as { cases: FixtureCase[] }).cases;
const imageOf = (c: FixtureCase) => new Uint8Array(readFileSync(fixturePath('tiny-blip2', c.image_file)));
const EOS = 202;
const withoutEos = (ids: number[]) => (ids.at(-1) === EOS ? ids.slice(0, ids.indexOf(EOS)) : ids);
/** The fixture decodes whole sequences (prompt included) and keeps the eos newline; answers hold neither. */
const answerOf = (c: FixtureCase, text: string) => (text.startsWith(c.prompt) ? text.slice(c.prompt.length) : text).split('\n')[0]!.trim();

describe('Blip2Engine on the tiny checkpoint', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await createEngine({ modelDir: TINY, modelId: 'tiny-blip2', dtype: 'f32' });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('batches a caption and a question and matches transformers greedy tokens, streaming the same text', async () => {
    const picked = [cases[0]!, cases[3]!];
    const streamed = ['', ''];
    const results = await engine.generate(
      picked.map((c) => ({ image: imageOf(c), prompt: c.prompt, params: defaultGenerationParams({ maxNewTokens: 12 }) })),
      { onToken: (e) => (streamed[e.request] += e.text) },
    );
    results.forEach((r, i) => {
      const want = picked[i]!.greedy;
      expect(r.sequences[0]!.tokenIds).toEqual(withoutEos(want.new_tokens));
      expect(r.sequences[0]!.text).toBe(answerOf(picked[i]!, want.text));
      expect(streamed[i]).toBe(r.sequences[0]!.text);
      expect(r.completionTokens).toBe(r.sequences[0]!.tokenIds.length);
    });
    expect(results[0]!.promptTokens).toBe(9);
  });

  it('returns the three beams best first', async () => {
    const c = cases[1]!;
    const [r] = await engine.generate([{ image: imageOf(c), prompt: c.prompt, params: defaultGenerationParams({ maxNewTokens: 12, numBeams: 3, n: 3 }) }]);
    expect(r!.sequences.map((s) => s.text)).toEqual(c.beam.beam3_texts.map((t) => answerOf(c, t)));
  });

  it('names the request with a bad image', async () => {
    const good = { image: imageOf(cases[0]!), prompt: '', params: defaultGenerationParams({ maxNewTokens: 2 }) };
    const err = await engine.generate([good, { ...good, image: new TextEncoder().encode('not an image') }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineInputError);
    expect((err as EngineInputError).requestIndex).toBe(1);
  });

  it('serves the tiny model through the OpenAI API', async () => {
    const server = await Blip2Server.start(engine, { port: 0 });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const c = cases[0]!;
      const r = await client.chat.completions.create({
        model: 'tiny-blip2',
        max_tokens: 12,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${Buffer.from(imageOf(c)).toString('base64')}` } }] }],
      });
      expect(r.choices[0]!.message.content).toBe(answerOf(c, c.greedy.text));
      expect(r.usage?.prompt_tokens).toBe(9);
    } finally {
      await server.close();
    }
  });
});
