// Quantized weights in headless Chromium (SwiftShader): a folder written by `blip2 convert` and a float folder
// quantized while loading, both fetched over HTTP by the same loader as in Node; tokens compared with what
// transformers generated with the same quantized weights (quantized.json).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../../src/quant/convert.js';
import { bundleForBrowser, launchChromium } from '../support/browser.js';
import { loadFixtures } from '../support/fixtures.js';
import { serveStatic } from '../support/static-server.js';
import type { QuantizedRun, QuantizedTestOptions } from './quantized-entry.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = loadFixtures().find((f) => existsSync(join(f.dir, 'quantized.json')))!;
const quantized = JSON.parse(readFileSync(join(fixture.dir, 'quantized.json'), 'utf8')) as { schemes: Record<'q8' | 'q4', { cases: { name: string; greedy: { new_tokens: number[] } }[] }> };
const captionCase = fixture.manifest.cases.find((c) => c.prompt === '')!;
const want = (scheme: 'q8' | 'q4') => quantized.schemes[scheme].cases.find((c) => c.name === captionCase.name)!.greedy.new_tokens;
const out = mkdtempSync(join(tmpdir(), 'blip2-browser-quantized-'));
const requests: { path: string; method: string }[] = [];
let runs: QuantizedRun[] = [];
let error: string | undefined;

beforeAll(async () => {
  await bundleForBrowser(join(root, 'test/browser/quantized-entry.ts'), out);
  writeFileSync(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
  await convertCheckpoint(fixture.dir, join(out, 'q4'), { quantize: 'q4', dtype: 'f32' });
  const site = await serveStatic({ '/shaders/': join(root, 'wgsl'), '/float/': fixture.dir, '/': out }, { onRequest: (r) => requests.push(r) });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${site.url}/index.html`);
    await page.waitForFunction(() => 'blip2QuantizedTest' in globalThis);
    const options: QuantizedTestOptions = {
      shaders: `${site.url}/shaders/`,
      image: `${site.url}/float/${captionCase.image_file}`,
      maxNewTokens: want('q4').length,
      loads: [{ model: `${site.url}/q4` }, { model: `${site.url}/float`, quantize: 'q8' }],
    };
    ({ runs, error } = await page.evaluate(
      async (o) => (globalThis as unknown as { blip2QuantizedTest: (o: QuantizedTestOptions) => Promise<{ runs: QuantizedRun[]; error?: string }> }).blip2QuantizedTest(o),
      options,
    ));
    await page.close();
  } finally {
    await browser.close();
    await site.close();
  }
});

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The tokens the pipeline reports: the fixture's new tokens up to and including an end-of-sequence token. */
function reported(tokens: number[], eos: number[]): number[] {
  const i = tokens.findIndex((t) => eos.includes(t));
  return i >= 0 ? tokens.slice(0, i + 1) : tokens;
}

describe('quantized BLIP-2 in headless Chromium (tiny checkpoint over HTTP)', () => {
  const gen = JSON.parse(readFileSync(join(fixture.dir, 'generation_config.json'), 'utf8')) as { eos_token_id: number | number[] };
  const eos = Array.isArray(gen.eos_token_id) ? gen.eos_token_id : [gen.eos_token_id];

  it('loads a converted q4 folder by URL with no conversion and gives transformers\' q4 tokens', () => {
    expect(error).toBeUndefined();
    const r = runs[0]!;
    expect(r.schemes).toContain('q4');
    expect(r.captionTokens).toEqual(reported(want('q4'), eos));
    expect(requests.some((q) => q.path.startsWith('/q4/model-00001-of-'))).toBe(true);
    expect(r.liveBytesAfterDispose).toBe(0);
  });

  it('quantizes a float folder to q8 while loading it by URL and gives transformers\' q8 tokens', () => {
    expect(error).toBeUndefined();
    const r = runs[1]!;
    expect(r.schemes).toContain('q8');
    expect(r.captionTokens).toEqual(reported(want('q8'), eos));
    expect(r.liveBytesAfterDispose).toBe(0);
  });
});
