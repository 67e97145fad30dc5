/**
 * The `blip2` command from its sources with the real BLIP-2 engine (not the fake one) on the tiny checkpoint
 * with f32 weights: its tokens must be transformers' greedy tokens (test/fixtures/tiny-blip2/cases.json).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import type { FixtureCase } from '../support/fixtures.js';
import { FIXTURE_MAX_NEW_TOKENS, TINY, greedyAnswerOf, greedyTokensOf, imagePathOf, questionOf, tinyCase } from '../support/tiny-cases.js';
import { ROOT, cli, collect, listeningUrl, startCli } from './run.js';

/** An empty BLIP2_ENGINE_MODULE leaves the CLI on its default engine, the BLIP-2 one. */
const REAL_ENGINE = { BLIP2_ENGINE_MODULE: '' };
const MODEL_DIR = relative(ROOT, TINY);
const MODEL = ['--model', MODEL_DIR, '--dtype', 'f32', '--max-new-tokens', String(FIXTURE_MAX_NEW_TOKENS)];
const imageArg = (c: FixtureCase) => relative(ROOT, imagePathOf(c));

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

function expectFixtureRecord(record: JsonRecord | undefined, c: FixtureCase) {
  expect(record).toEqual({
    image: imageArg(c),
    prompt: c.prompt,
    text: greedyAnswerOf(c),
    token_ids: greedyTokensOf(c),
    finish_reason: 'length',
    prompt_tokens: c.input_ids.length,
    completion_tokens: greedyTokensOf(c).length,
  });
}

describe('blip2 CLI with the real engine on the tiny checkpoint', () => {
  it('captions one image with transformers greedy tokens', async () => {
    const c = tinyCase('case0');
    const records = await runJson(['caption', imageArg(c), ...MODEL, '--json']);
    expect(records).toHaveLength(1);
    expectFixtureRecord(records[0], c);
  });

  it('captions two images in one batch, each with its own greedy tokens', async () => {
    const cases = [tinyCase('case2'), tinyCase('case4')];
    const records = await runJson(['caption', ...cases.map(imageArg), ...MODEL, '--json']);
    expect(records).toHaveLength(2);
    cases.forEach((c, i) => expectFixtureRecord(records[i], c));
  });

  it('answers a question with the question case greedy tokens, as JSON and as text', async () => {
    const c = tinyCase('case1');
    const records = await runJson(['ask', imageArg(c), questionOf(c)!, ...MODEL, '--json']);
    expect(records).toHaveLength(1);
    expectFixtureRecord(records[0], c);
    const plain = await cli(['ask', imageArg(c), questionOf(c)!, ...MODEL, '--quiet'], { env: REAL_ENGINE });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(`${greedyAnswerOf(c)}\n`);
  });

  it('serves the tiny model with blip2 serve (private image URLs allowed) and stops on SIGTERM', async () => {
    const c = tinyCase('case5');
    const child = startCli(['serve', '--model', MODEL_DIR, '--dtype', 'f32', '--port', '0', '--allow-private-image-urls'], REAL_ENGINE);
    const done = collect(child);
    try {
      const url = await listeningUrl(child);
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const image = `data:image/png;base64,${readFileSync(imagePathOf(c)).toString('base64')}`;
      const r = await client.chat.completions.create({
        model: 'tiny-blip2',
        max_tokens: FIXTURE_MAX_NEW_TOKENS,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: questionOf(c)! }] }],
      });
      expect(r.choices[0]!.message.content).toBe(greedyAnswerOf(c));
      expect(r.usage?.completion_tokens).toBe(greedyTokensOf(c).length);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    expect(r.stderr).toMatch(/allow-private-image-urls lets clients/);
    expect(r.code).toBe(0);
  });
});
