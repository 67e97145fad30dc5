// `bench:kernels --browser` / `bench:model --browser`: the benchmark page of the demo build, driven in headless
// Chromium (SwiftShader), returns reports in the common schema; the model's cold caption is transformers' greedy caption.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runBenchInBrowser } from '../../bench/browser-driver.js';
import { buildDemo } from '../../demo/build.js';
import { serveDemo } from '../../demo/serve.js';
import { launchChromium } from '../support/browser.js';
import { validateReport, type BenchReport } from '../../bench/report-schema.js';
import { loadFixtures } from '../support/fixtures.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = loadFixtures().find((f) => f.name === 'tiny-blip2')!;
const caption = fixture.manifest.cases.find((c) => c.prompt === '')!;
let kernels: BenchReport;
let model: BenchReport;
const progress: string[] = [];

beforeAll(async () => {
  kernels = await runBenchInBrowser({ suite: 'kernels', filter: '^argmax|^layernorm 64x', timeMs: 50, label: 'test kernels' }, (l) => progress.push(l));
  model = await runBenchInBrowser(
    { suite: 'model', modelDir: fixture.dir, imagePath: `${fixture.dir}/${caption.image_file}`, dtype: 'f16', tokens: caption.greedy.new_tokens.length, runs: 1 },
    (l) => progress.push(l),
  );
}, 240_000);

describe('benchmark page in headless Chromium', () => {
  it('runs the selected kernel cases on the SwiftShader adapter and reports them in the schema', () => {
    expect(validateReport(kernels)).toBe(kernels);
    expect(kernels.label).toBe('test kernels');
    expect(kernels.runtime.kind).toBe('browser');
    expect(kernels.runtime.user_agent).toMatch(/Chrome\//);
    expect(kernels.adapter!.architecture).toMatch(/swiftshader/i);
    expect(kernels.adapter!.features).not.toContain('shader-f16');
    expect(Object.keys(kernels.adapter!.limits)).toContain('maxStorageBufferBindingSize');
    expect(kernels.kernels!.map((k) => `${k.kernel} ${k.shape}`)).toEqual(['layernorm 64x2560', 'argmax 1x50304']);
    for (const k of kernels.kernels!) {
      expect(k.ms).toBeGreaterThan(0);
      expect(k.timing).toBe('wall-clock');
    }
    expect(kernels.roofline!.gflops).toBeGreaterThan(0); // the driver passed this host's clock
    expect(progress.some((l) => l.includes('argmax 1x50304 f32'))).toBe(true);
  });

  it('records the code that ran and the host, filled in by the driver', () => {
    expect(kernels.project.commit).toBe(execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim());
    expect(kernels.host.source).toBe('driver');
    expect(kernels.host.cpu_cores).toBeGreaterThan(0);
  });

  it("captions from a cold start with transformers' greedy tokens and times every stage", () => {
    expect(validateReport(model)).toBe(model);
    const run = model.model![0]!;
    expect(run.model.name).toBe('tiny-blip2');
    expect(run.variant.dtype).toBe('f16');
    const e = run.e2e!;
    expect(e.token_ids).toEqual(caption.greedy.new_tokens);
    expect(e.decode_tokens).toBe(caption.greedy.new_tokens.length - 1);
    for (const k of ['processor_ms', 'vision_ms', 'qformer_ms', 'prefill_ms'] as const) expect(e[k]).toBeGreaterThan(0);
    expect(e.ttft_ms).toBeCloseTo(e.processor_ms + e.vision_ms + e.qformer_ms + e.prefill_ms, 6);
    expect(e.decode_tokens_per_s).toBeCloseTo((1000 * e.decode_tokens) / e.decode_ms, 6);
    expect(run.stages.decode_ms_per_token).toBeGreaterThan(0);
    expect(run.memory.weights_bytes).toBeGreaterThan(0);
    expect(run.memory.peak_device_bytes).toBeGreaterThanOrEqual(run.memory.weights_bytes!);
    expect(run.load_s).toBeGreaterThan(0);
  });
});

describe('benchmark page, used by hand', () => {
  it('runs from its form, shows progress and the table, and offers the report as a JSON download', async () => {
    const out = mkdtempSync(join(tmpdir(), 'blip2-bench-ui-'));
    const site = await serveDemo({ port: 0, distDir: await buildDemo({ outDir: out }) });
    const browser = await launchChromium();
    try {
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${site.url}/bench.html`);
      await page.waitForFunction(() => document.getElementById('adapter')!.textContent !== '–');
      expect(await page.textContent('#adapter')).toMatch(/swiftshader/i);
      expect(await page.inputValue('#model-url')).toBe('./models/tiny-blip2/');
      await page.fill('#filter', '^argmax');
      await page.fill('#time', '50');
      await page.fill('#label', 'by hand');
      await page.click('#run-kernels');
      await page.waitForSelector('#download:not([hidden])', { timeout: 60_000 });
      expect(await page.textContent('#status')).toBe('done: kernels benchmark, by hand');
      expect(await page.textContent('#log')).toMatch(/\[1\/1\] argmax 1x50304 f32: [\d.]+ ms[\s\S]*kernel +shape/);
      expect(await page.getAttribute('#download', 'download')).toBe('bench-kernels-by_hand.json');
      const downloaded = await page.evaluate(async () => (await fetch((document.getElementById('download') as HTMLAnchorElement).href)).json());
      const report = validateReport(downloaded);
      expect(report.label).toBe('by hand');
      expect(report.kernels!.map((k) => k.kernel)).toEqual(['argmax']);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      await site.close();
      rmSync(out, { recursive: true, force: true });
    }
  });
});
