// The whole model in headless Chromium (SwiftShader, no shader-f16) on every fixture checkpoint: weights fetched
// over HTTP ranges, images decoded by the browser, tokens compared with what transformers generated for the
// same weights (f32 exactly; f16 wherever the reference's margin exceeds f16's logit error, measured in Node).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { bundleForBrowser, launchChromium } from '../support/browser.js';
import { captionCases, questionCases, questionOf } from '../support/cases.js';
import { loadFixtures, readFloat32, type Fixture, type FixtureCase } from '../support/fixtures.js';
import { expectMarginClaims, marginClaims } from '../support/margins.js';
import { greedyTokenCases } from '../support/parity.js';
import { serveStatic } from '../support/static-server.js';
import type { ModelTestOptions, ModelTestResult } from './model-entry.js';
import { withAlphaSweep, withSwappedColorants } from './png-variants.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface PixelCheck {
  /** Path on the test site. */
  path: string;
  /** The fixture tensor holding transformers' pixel_values of that image. */
  tensor: string;
  what: string;
}

interface FixtureRun {
  fx: Fixture;
  captionCase: FixtureCase;
  questionCase: FixtureCase;
  checks: PixelCheck[];
  result?: ModelTestResult;
}

/**
 * Every image of the fixture's cases and extra images against its pixel_values, plus two PNG variants of an
 * RGB PNG with an ICC profile (same samples, other metadata: PIL ignores both, a browser must too).
 */
async function pixelChecks(fx: Fixture, prefix: string, out: string): Promise<PixelCheck[]> {
  const m = fx.manifest as { images?: { index: number; file: string; mode: string }[]; extra_images?: { index: number; file: string; mode: string }[] };
  const checks: PixelCheck[] = [];
  for (const image of m.images ?? []) {
    const c = fx.manifest.cases.find((x) => x.image === image.index);
    if (!c || !fx.hasTensor(`${c.name}.pixel_values`)) continue;
    const tensor = `${c.name}.pixel_values`;
    checks.push({ path: `${prefix}/${image.file}`, tensor, what: `${image.mode} ${extname(image.file).slice(1)}` });
    if (image.mode !== 'RGB' || extname(image.file) !== '.png') continue;
    const png = readFileSync(join(fx.dir, image.file));
    let icc: Buffer | null = null;
    try {
      icc = withSwappedColorants(png);
    } catch {
      // no iCCP chunk: nothing to swap
    }
    if (!icc) continue;
    const base = `${fx.name}-${image.file.replace(/\.png$/, '')}`;
    writeFileSync(join(out, `${base}-swapped-icc.png`), icc);
    writeFileSync(join(out, `${base}-alpha-sweep.png`), await withAlphaSweep(png));
    checks.push({ path: `/${base}-swapped-icc.png`, tensor, what: 'RGB with a non-sRGB ICC profile' });
    checks.push({ path: `/${base}-alpha-sweep.png`, tensor, what: 'RGBA, alpha 0..255' });
  }
  for (const image of m.extra_images ?? []) {
    const tensor = `extra${image.index}.pixel_values`;
    if (fx.hasTensor(tensor)) checks.push({ path: `${prefix}/${image.file}`, tensor, what: `${image.mode} (preprocessing only)` });
  }
  return checks;
}

const out = mkdtempSync(join(tmpdir(), 'blip2-browser-model-'));
const requests: { method: string; path: string; status: number; range: string | null }[] = [];
const runs: FixtureRun[] = loadFixtures().map((fx) => ({ fx, captionCase: captionCases(fx)[0] ?? fx.manifest.cases[0]!, questionCase: questionCases(fx)[0] ?? fx.manifest.cases.at(-1)!, checks: [] }));
const prefixOf = (i: number) => `/fixture${i}`;
let site: Awaited<ReturnType<typeof serveStatic>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
const pageErrors: string[] = [];

beforeAll(async () => {
  await bundleForBrowser(join(root, 'test/browser/model-entry.ts'), out);
  for (const [i, run] of runs.entries()) run.checks = await pixelChecks(run.fx, prefixOf(i), out);
  writeFileSync(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
  // Shaders at /shaders/, not where the bundle would look by default: the page must find them through setShaderBaseUrl.
  const mounts: Record<string, string> = { '/shaders/': join(root, 'wgsl') };
  runs.forEach((run, i) => (mounts[`${prefixOf(i)}/`] = run.fx.dir));
  site = await serveStatic({ ...mounts, '/': out }, { onRequest: (r) => requests.push(r) });
  browser = await launchChromium();
  const page = await browser.context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.goto(`${site.url}/index.html`);
  await page.waitForFunction(() => 'blip2ModelTest' in globalThis);
  for (const [i, run] of runs.entries()) {
    const options: ModelTestOptions = {
      model: `${site.url}${prefixOf(i)}`,
      image: `${site.url}${prefixOf(i)}/${run.captionCase.image_file}`,
      questionImage: `${site.url}${prefixOf(i)}/${run.questionCase.image_file}`,
      pixelImages: run.checks.map((c) => `${site.url}${c.path}`),
      shaders: `${site.url}/shaders/`,
      question: questionOf(run.questionCase) ?? 'what is in the picture?',
      maxNewTokens: run.fx.maxNewTokens,
      dtypes: ['f16', 'f32'],
    };
    run.result = await page.evaluate(
      async (o) => (globalThis as unknown as { blip2ModelTest: (o: ModelTestOptions) => Promise<ModelTestResult> }).blip2ModelTest(o),
      options,
    );
  }
  await page.close();
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  rmSync(out, { recursive: true, force: true });
});

for (const [i, run] of runs.entries()) {
  const { fx, captionCase, questionCase } = run;
  describe(`BLIP-2 in headless Chromium (${fx.name} over HTTP)`, () => {
    it('loads, captions and answers without errors', () => {
      expect(run.result!.error).toBeUndefined();
      expect(pageErrors).toEqual([]);
      expect(run.result!.adapter.length).toBeGreaterThan(0);
      expect(questionCase.prompt).toBe(`Question: ${questionOf(questionCase)} Answer:`);
    });

    it("decodes every image to PIL's pixels: pixel_values equal transformers'", async () => {
      expect(run.checks.length).toBeGreaterThan(0);
      const expected = await fx.expected();
      try {
        for (const [k, check] of run.checks.entries()) {
          const want = await readFloat32(expected, check.tensor);
          const got = run.result!.pixels[k]!;
          expect(got.shape, check.path).toEqual(expected.info(check.tensor).shape);
          let maxDiff = 0;
          let differing = 0;
          got.values.forEach((v, j) => {
            const d = Math.abs(v - want[j]!);
            maxDiff = Math.max(maxDiff, d);
            if (d > 0) differing++;
          });
          expect(maxDiff, `${check.path} (${check.what}): browser pixel_values vs transformers: max abs difference ${maxDiff} (${differing} of ${want.length} values differ)`).toBe(0);
        }
      } finally {
        await expected.close();
      }
    });

    it('f32 weights give the greedy tokens of transformers', () => {
      const r = run.result!.runs.find((x) => x.dtype === 'f32')!;
      expect(r).toBeDefined();
      expect(r.storage.f16).toBeUndefined();
      expect(r.captionTokens).toEqual(captionCase.greedy.new_tokens);
      expect(r.answerTokens).toEqual(questionCase.greedy.new_tokens);
      expect(r.streamedCaption).toEqual(r.captionTokens);
      console.log(`${fx.name} f32: load ${r.loadMs.toFixed(0)} ms, caption + answer ${r.generateMs.toFixed(0)} ms, weights ${r.liveBytesLoaded} bytes live`);
    });

    it("f16 weights (packed pairs) give transformers' greedy tokens wherever the margin exceeds f16's logit error", async (ctx) => {
      const r = run.result!.runs.find((x) => x.dtype === 'f16')!;
      expect(r).toBeDefined();
      // f16 is the storage of the large matrices (read as packed pairs: SwiftShader has no shader-f16).
      expect(r.storage.f16).toBeGreaterThan(0);
      expect(r.streamedCaption).toEqual(r.captionTokens);
      // The error of f16 storage, measured in Node on the same packed path, for these two cases.
      const gpu = await Gpu.create({ disableF16: true });
      const ex = await fx.expected();
      try {
        const model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu });
        const measured = await greedyTokenCases(model, fx, ex, [captionCase, questionCase]).finally(() => model.dispose());
        if (!measured) return ctx.skip();
        const browserCases = measured.cases.map((c, k) => ({ ...c, generated: k === 0 ? r.captionTokens : r.answerTokens, teacherForced: undefined }));
        expectMarginClaims(marginClaims({ label: `${fx.name} f16 weights in Chromium`, logitError: measured.logitError, cases: browserCases }));
      } finally {
        await ex.close();
        gpu.destroy();
      }
      console.log(`${fx.name} f16: load ${r.loadMs.toFixed(0)} ms, caption + answer ${r.generateMs.toFixed(0)} ms, weights ${r.liveBytesLoaded} bytes live`);
    });

    it('runs on an adapter without shader-f16 (the packed-f16 path)', () => {
      // SwiftShader in Chromium exposes no shader-f16; if that changes, the f16 run above used native f16 instead.
      expect(run.result!.shaderF16).toBe(false);
    });

    it('leaves no GPU memory after dispose()', () => {
      for (const r of run.result!.runs) {
        expect(r.liveBytesLoaded).toBeGreaterThan(0);
        expect(r.liveBytesAfterDispose).toBe(0);
      }
    });

    it('reads the weights with HTTP range requests', () => {
      const weights = requests.filter((r) => r.path === `${prefixOf(i)}/model.safetensors`);
      expect(weights.some((r) => r.method === 'HEAD' && r.status === 200)).toBe(true);
      const ranged = weights.filter((r) => r.method === 'GET');
      expect(ranged.length).toBeGreaterThan(0);
      expect(ranged.every((r) => r.status === 206 && r.range !== null)).toBe(true);
    });
  });
}
