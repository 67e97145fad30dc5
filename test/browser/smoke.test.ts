import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleForBrowser, launchChromium } from '../support/browser.js';
import { serveStatic } from '../support/static-server.js';
import type { SmokeResult } from './smoke-entry.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'blip2-browser-'));
let site: Awaited<ReturnType<typeof serveStatic>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

beforeAll(async () => {
  await bundleForBrowser(join(root, 'test/browser/smoke-entry.ts'), out);
  writeFileSync(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
  // The bundle resolves shaders at ../../wgsl/ from its own URL, i.e. /wgsl/ at the site root.
  site = await serveStatic({ '/wgsl/': join(root, 'wgsl'), '/': out });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  rmSync(out, { recursive: true, force: true });
});

describe('browser (headless Chromium, WebGPU)', () => {
  it('runs the engine from the same source as Node, on the f32 path', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}/index.html`);
    const result = (await page.evaluate(async () => (globalThis as unknown as { smoke: Promise<unknown> }).smoke)) as SmokeResult;
    expect(errors).toEqual([]);
    expect(result.error).toBeUndefined();
    const data = Array.from({ length: 1001 }, (_, i) => Math.fround(Math.sin(i) * 100));
    expect(result.copied).toEqual(data.slice(3 * 143, 5 * 143));
    expect(result.castBack).toEqual(data.slice(3 * 143, 5 * 143).map((v) => Math.trunc(v)));
    expect(result.liveBytesAfter).toBe(0);
    expect(result.adapter.length).toBeGreaterThan(0);
  });
});
