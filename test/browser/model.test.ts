// The whole model in headless Chromium (SwiftShader, no shader-f16): weights fetched over HTTP ranges, the
// image decoded by the browser, tokens compared with what transformers generated for the same weights.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleForBrowser, launchChromium } from '../support/browser.js';
import { loadFixtures, readFloat32 } from '../support/fixtures.js';
import { serveStatic } from '../support/static-server.js';
import type { ModelTestOptions, ModelTestResult } from './model-entry.js';
import { withAlphaSweep, withSwappedColorants } from './png-variants.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = loadFixtures().find((f) => f.name === 'tiny-blip2')!;
const [captionCase, questionCase] = [fixture.manifest.cases[0]!, fixture.manifest.cases[1]!];
const QUESTION = 'what is in the picture?';
/** Images whose browser-decoded pixel_values are compared with transformers' (PIL's decoding). */
const PIXEL_CHECKS = [
  { path: 'tiny-blip2/chelsea.png', tensor: 'case0.pixel_values', what: 'RGB with an sRGB ICC profile' },
  { path: 'chelsea-swapped-icc.png', tensor: 'case0.pixel_values', what: 'RGB with a non-sRGB ICC profile' },
  { path: 'chelsea-alpha-sweep.png', tensor: 'case0.pixel_values', what: 'RGBA, alpha 0..255' },
  { path: 'tiny-blip2/camera.png', tensor: 'case2.pixel_values', what: 'grayscale' },
  { path: 'tiny-blip2/cell.png', tensor: 'case4.pixel_values', what: 'grayscale, portrait' },
  { path: 'tiny-blip2/horse.png', tensor: 'extra0.pixel_values', what: 'RGBA, nearly opaque' },
];
const out = mkdtempSync(join(tmpdir(), 'blip2-browser-model-'));
const requests: { method: string; path: string; status: number; range: string | null }[] = [];
let site: Awaited<ReturnType<typeof serveStatic>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let result: ModelTestResult;
const pageErrors: string[] = [];

beforeAll(async () => {
  await bundleForBrowser(join(root, 'test/browser/model-entry.ts'), out);
  const chelsea = readFileSync(join(fixture.dir, captionCase.image_file));
  writeFileSync(join(out, 'chelsea-swapped-icc.png'), withSwappedColorants(chelsea));
  writeFileSync(join(out, 'chelsea-alpha-sweep.png'), await withAlphaSweep(chelsea));
  writeFileSync(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
  // Shaders at /shaders/, not where the bundle would look by default: the page must find them through setShaderBaseUrl.
  site = await serveStatic({ '/shaders/': join(root, 'wgsl'), '/tiny-blip2/': fixture.dir, '/': out }, { onRequest: (r) => requests.push(r) });
  browser = await launchChromium();
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${site.url}/index.html`);
  await page.waitForFunction(() => 'blip2ModelTest' in globalThis);
  const options: ModelTestOptions = {
    model: `${site.url}/tiny-blip2`,
    image: `${site.url}/tiny-blip2/${captionCase.image_file}`,
    pixelImages: PIXEL_CHECKS.map((c) => `${site.url}/${c.path}`),
    shaders: `${site.url}/shaders/`,
    question: QUESTION,
    maxNewTokens: captionCase.greedy.new_tokens.length,
    dtypes: ['f16', 'f32'],
  };
  result = await page.evaluate(
    async (o) => (globalThis as unknown as { blip2ModelTest: (o: ModelTestOptions) => Promise<ModelTestResult> }).blip2ModelTest(o),
    options,
  );
  await page.close();
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  rmSync(out, { recursive: true, force: true });
});

describe('BLIP-2 in headless Chromium (tiny checkpoint over HTTP)', () => {
  it('loads, captions and answers without errors', () => {
    expect(result.error).toBeUndefined();
    expect(pageErrors).toEqual([]);
    expect(result.adapter.length).toBeGreaterThan(0);
    expect(questionCase.prompt).toBe(`Question: ${QUESTION} Answer:`);
  });

  it.each(PIXEL_CHECKS.map((c, i) => ({ ...c, i })))("decodes $path ($what) to PIL's pixels: pixel_values equal transformers'", async ({ i, tensor }) => {
    const expected = await fixture.expected();
    const want = await readFloat32(expected, tensor);
    const got = result.pixels[i]!;
    expect(got.shape).toEqual(expected.info(tensor).shape);
    let maxDiff = 0;
    let differing = 0;
    got.values.forEach((v, k) => {
      const d = Math.abs(v - want[k]!);
      maxDiff = Math.max(maxDiff, d);
      if (d > 0) differing++;
    });
    console.log(`${PIXEL_CHECKS[i]!.path}: browser pixel_values vs transformers: max abs difference ${maxDiff} (${differing} of ${want.length} values differ)`);
    expect(maxDiff).toBe(0);
  });

  it.each(['f16', 'f32'] as const)('%s weights give the greedy tokens of transformers', (dtype) => {
    const run = result.runs.find((r) => r.dtype === dtype)!;
    expect(run).toBeDefined();
    // f16 is the storage of the large matrices (read as packed pairs: SwiftShader has no shader-f16).
    if (dtype === 'f16') expect(run.storage.f16).toBeGreaterThan(0);
    else expect(run.storage.f16).toBeUndefined();
    expect(run.captionTokens).toEqual(captionCase.greedy.new_tokens);
    expect(run.answerTokens).toEqual(questionCase.greedy.new_tokens);
    expect(run.streamedCaption).toEqual(run.captionTokens);
    console.log(`${dtype}: load ${run.loadMs.toFixed(0)} ms, caption + answer ${run.generateMs.toFixed(0)} ms, weights ${run.liveBytesLoaded} bytes live`);
  });

  it('runs on an adapter without shader-f16 (the packed-f16 path)', () => {
    // SwiftShader in Chromium exposes no shader-f16; if that changes, the f16 run above used native f16 instead.
    expect(result.shaderF16).toBe(false);
  });

  it('leaves no GPU memory after dispose()', () => {
    for (const run of result.runs) {
      expect(run.liveBytesLoaded).toBeGreaterThan(0);
      expect(run.liveBytesAfterDispose).toBe(0);
    }
  });

  it('reads the weights with HTTP range requests', () => {
    const weights = requests.filter((r) => r.path === '/tiny-blip2/model.safetensors');
    expect(weights.some((r) => r.method === 'HEAD' && r.status === 200)).toBe(true);
    const ranged = weights.filter((r) => r.method === 'GET');
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged.every((r) => r.status === 206 && r.range !== null)).toBe(true);
  });
});
