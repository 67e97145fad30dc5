/**
 * `--quantize` and `blip2 convert` from the command line with the real engine, on every fixture folder that has
 * quantized references: `blip2 caption IMG --model DIR --quantize q8 --dtype f32 --json` prints the token ids
 * transformers chose with the same q8 weights, and so does the same caption from a folder `blip2 convert` wrote.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixtures } from '../support/fixtures.js';
import { ROOT, cli } from './run.js';

const REAL_ENGINE = { BLIP2_ENGINE_MODULE: '' };
const tmp = mkdtempSync(join(tmpdir(), 'blip2-cli-quant-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Quantized {
  schemes: Record<'q8' | 'q4', { cases: { name: string; greedy: { new_tokens: number[] } }[] }>;
}

/** The end-of-sequence ids of a fixture (generation_config.json, else the text config). */
function eosIds(dir: string): number[] {
  const gen = JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')) as { eos_token_id?: number | number[] };
  const ids = gen.eos_token_id ?? (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { text_config: { eos_token_id: number } }).text_config.eos_token_id;
  return Array.isArray(ids) ? ids : [ids];
}

for (const fx of loadFixtures().filter((f) => existsSync(join(f.dir, 'quantized.json')))) {
  describe(`blip2 --quantize and convert: ${fx.name}`, () => {
    const q = JSON.parse(readFileSync(join(fx.dir, 'quantized.json'), 'utf8')) as Quantized;
    const c = fx.manifest.cases.find((x) => x.prompt === '')!;
    const tokens = q.schemes.q8.cases.find((x) => x.name === c.name)!.greedy.new_tokens;
    const eos = eosIds(fx.dir);
    const stop = tokens.findIndex((t) => eos.includes(t));
    // The CLI reports the new tokens without the end-of-sequence token.
    const want = stop >= 0 ? tokens.slice(0, stop) : tokens;
    const image = relative(ROOT, join(fx.dir, c.image_file));
    const args = ['caption', image, '--dtype', 'f32', '--json', '--max-new-tokens', String(tokens.length)];

    async function caption(model: string, extra: string[]): Promise<number[]> {
      const r = await cli([...args, '--model', model, ...extra], { env: REAL_ENGINE });
      expect(r.stderr).not.toMatch(/^blip2/m);
      expect(r.code).toBe(0);
      return (JSON.parse(r.stdout.trim()) as { token_ids: number[] }).token_ids;
    }

    it('caption --quantize q8 --dtype f32 prints transformers\' q8 token ids', async () => {
      expect(await caption(relative(ROOT, fx.dir), ['--quantize', 'q8'])).toEqual(want);
    });

    it('the same from a folder written by blip2 convert, which rejects a contradicting --quantize', async () => {
      const out = join(tmp, `${fx.name}-q8`);
      const conv = await cli(['convert', relative(ROOT, fx.dir), '--quantize', 'q8', '--dtype', 'f32', '--out', out, '--json', '--progress'], { env: REAL_ENGINE });
      expect(conv.code, conv.stderr).toBe(0);
      expect(JSON.parse(conv.stdout)).toMatchObject({ dir: out, quantize: 'q8', dtype: 'f32' });
      expect(conv.stderr).toMatch(/Converting to q8: 100%/);
      expect(await caption(out, [])).toEqual(want);
      const bad = await cli([...args, '--model', out, '--quantize', 'q4'], { env: REAL_ENGINE });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/holds q8 weights.*'q4' contradicts it/);
    });
  });
}

describe('blip2 convert usage', () => {
  it('requires --quantize and --out, and checks their values', async () => {
    const dir = relative(ROOT, loadFixtures()[0]!.dir);
    for (const [args, pattern] of [
      [['convert', dir, '--out', join(tmp, 'x')], /--quantize q8\|q4 is required/],
      [['convert', dir, '--quantize', 'q4'], /--out DIR is required/],
      [['convert', dir, '--quantize', 'q3', '--out', join(tmp, 'x')], /--quantize must be q8 or q4/],
      [['caption', 'x.png', '--quantize', 'int4'], /--quantize must be q8 or q4/],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(pattern);
    }
  });
});
