/**
 * The `blip2` command from its sources with the real BLIP-2 engine (not the fake one) on every fixture
 * checkpoint (test/fixtures/* and BLIP2_FIXTURES) with f32 weights: its tokens and text must be transformers'
 * greedy ones (cases.json), for captions, batches, questions and `blip2 serve`.
 */
import { basename, relative } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { captionCases, dataUrlOf, greedyAnswerOf, greedyTokensOf, questionCases, questionOf } from '../support/cases.js';
import { loadFixtures, type Fixture, type FixtureCase } from '../support/fixtures.js';
import { ROOT, cli, collect, listeningUrl, startCli } from './run.js';

/** An empty BLIP2_ENGINE_MODULE leaves the CLI on its default engine, the BLIP-2 one. */
const REAL_ENGINE = { BLIP2_ENGINE_MODULE: '' };

interface JsonRecord {
  image: string;
  prompt: string;
  text: string;
  token_ids: number[];
  finish_reason: string;
  prompt_tokens: number;
  completion_tokens: number;
}

async function runJson(args: string[]): Promise<JsonRecord[]> {
  const r = await cli(args, { env: REAL_ENGINE });
  expect(r.stderr).not.toMatch(/^blip2/m);
  expect(r.code).toBe(0);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as JsonRecord);
}

function expectFixtureRecord(fx: Fixture, record: JsonRecord | undefined, c: FixtureCase) {
  const tokens = greedyTokensOf(fx, c);
  expect(record).toEqual({
    image: imageArg(fx, c),
    prompt: c.prompt,
    text: greedyAnswerOf(c),
    token_ids: tokens,
    finish_reason: tokens.length < c.greedy.new_tokens.length ? 'eos' : 'length',
    prompt_tokens: c.input_ids.length,
    completion_tokens: tokens.length,
  });
}

const imageArg = (fx: Fixture, c: FixtureCase) => relative(ROOT, fx.imagePath(c));

for (const fx of loadFixtures()) {
  const modelDir = relative(ROOT, fx.dir);
  const MODEL = ['--model', modelDir, '--dtype', 'f32', '--max-new-tokens', String(fx.maxNewTokens)];
  const captions = captionCases(fx);
  const questions = questionCases(fx);

  describe(`blip2 CLI with the real engine: ${fx.name}`, () => {
    it.skipIf(captions.length === 0)('captions one image with transformers greedy tokens', async () => {
      const c = captions[0]!;
      const records = await runJson(['caption', imageArg(fx, c), ...MODEL, '--json']);
      expect(records).toHaveLength(1);
      expectFixtureRecord(fx, records[0], c);
    });

    it.skipIf(captions.length < 2)('captions two images in one batch, each with its own greedy tokens', async () => {
      const cases = captions.slice(-2);
      const records = await runJson(['caption', ...cases.map((c) => imageArg(fx, c)), ...MODEL, '--json']);
      expect(records).toHaveLength(2);
      cases.forEach((c, i) => expectFixtureRecord(fx, records[i], c));
    });

    it.skipIf(questions.length === 0)('answers a question with the question case greedy tokens, as JSON and as text', async () => {
      const c = questions[0]!;
      const records = await runJson(['ask', imageArg(fx, c), questionOf(c)!, ...MODEL, '--json']);
      expect(records).toHaveLength(1);
      expectFixtureRecord(fx, records[0], c);
      const plain = await cli(['ask', imageArg(fx, c), questionOf(c)!, ...MODEL, '--quiet'], { env: REAL_ENGINE });
      expect(plain.code).toBe(0);
      expect(plain.stdout).toBe(`${greedyAnswerOf(c)}\n`);
    });

    it.skipIf(questions.length === 0)('serves the model with blip2 serve (private image URLs allowed) and stops on SIGTERM', async () => {
      const c = questions.at(-1)!;
      const child = startCli(['serve', '--model', modelDir, '--dtype', 'f32', '--port', '0', '--allow-private-image-urls'], REAL_ENGINE);
      const done = collect(child);
      try {
        const url = await listeningUrl(child);
        const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
        const r = await client.chat.completions.create({
          model: basename(fx.dir),
          max_tokens: fx.maxNewTokens,
          messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrlOf(fx, c) } }, { type: 'text', text: questionOf(c)! }] }],
        });
        expect(r.choices[0]!.message.content).toBe(greedyAnswerOf(c));
        expect(r.usage?.completion_tokens).toBe(greedyTokensOf(fx, c).length);
      } finally {
        child.kill('SIGTERM');
      }
      const r = await done;
      expect(r.stderr).toMatch(/allow-private-image-urls lets clients/);
      expect(r.code).toBe(0);
    });
  });
}
