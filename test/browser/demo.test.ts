// The browser demo driven like a user would in headless Chromium: load the tiny checkpoint from the demo
// server (and from picked files), caption the sample photo, ask and follow up; the token ids it shows must be
// transformers'. BLIP2_DEMO_SCREENSHOT=file.png saves a screenshot of the finished chat.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo } from '../../demo/build.js';
import { serveDemo, TINY_MODEL } from '../../demo/serve.js';
import { launchChromium } from '../support/browser.js';
import { loadFixtures } from '../support/fixtures.js';

const fixture = loadFixtures().find((f) => f.name === 'tiny-blip2')!;
const [captionCase, questionCase] = [fixture.manifest.cases[0]!, fixture.manifest.cases[1]!];
const out = mkdtempSync(join(tmpdir(), 'blip2-demo-'));
let site: Awaited<ReturnType<typeof serveDemo>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];
let requests: { method: string; path: string; status: number }[] = [];

interface Message {
  kind: string;
  text: string;
  ids: number[];
}

async function messages(): Promise<Message[]> {
  return page.$$eval('#messages li', (items) =>
    items.map((li) => ({
      kind: li.className,
      text: li.textContent ?? '',
      ids: (/token ids: ([\d ]+)/.exec((li as HTMLElement).title)?.[1] ?? '').split(' ').filter(Boolean).map(Number),
    })),
  );
}

/** Waits until the page is idle again (no generation or load running) with `count` messages shown. */
async function settled(count: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('#messages li').length === n && !document.querySelector('#messages li.pending') && !(document.getElementById('load') as HTMLButtonElement).disabled, count);
}

async function loadModel(how: () => Promise<void>): Promise<void> {
  await page.evaluate(() => (document.getElementById('weights')!.textContent = 'not loaded'));
  await how();
  await page.waitForFunction(() => document.getElementById('weights')!.textContent !== 'not loaded' || !document.getElementById('error')!.hidden);
  expect(await page.isHidden('#error')).toBe(true);
}

beforeAll(async () => {
  await buildDemo({ outDir: out });
  site = await serveDemo({ port: 0, distDir: out, onRequest: (r) => requests.push(r) });
  browser = await launchChromium();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.setViewportSize({ width: 1100, height: 1000 });
  await page.goto(`${site.url}/`);
  await page.waitForFunction(() => document.getElementById('adapter')!.textContent !== '–' && (document.getElementById('model-url') as HTMLInputElement).value !== '');
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  rmSync(out, { recursive: true, force: true });
});

describe('browser demo (headless Chromium)', () => {
  it('shows the adapter and offers the served models', async () => {
    expect(await page.textContent('#adapter')).toMatch(/swiftshader/i);
    expect(await page.inputValue('#model-url')).toBe('./models/tiny-blip2/');
    expect(site.models).toEqual(['./models/tiny-blip2/']);
  });

  it("loads the model from its URL, captions and chats with transformers' tokens", async () => {
    await loadModel(() => page.click('#load'));
    expect(await page.textContent('#weights')).toBe('f16 (packed pairs, no shader-f16)');
    expect(await page.isHidden('#progress')).toBe(true);
    await page.click('#sample');
    await page.click('#settings summary');
    await page.fill('#max-new-tokens', String(captionCase.greedy.new_tokens.length));
    await page.click('#caption');
    await settled(1);
    await page.fill('#question', 'what is in the picture?');
    await page.click('#ask');
    await settled(3);
    let shown = await messages();
    expect(shown[0]!.ids).toEqual(captionCase.greedy.new_tokens);
    expect(shown[1]).toMatchObject({ kind: 'question', text: 'what is in the picture?' });
    expect(shown[2]!.ids).toEqual(questionCase.greedy.new_tokens);
    expect(await page.textContent('#timing')).toMatch(/^12 tokens in .* first token after .* tokens\/s/);

    // A follow-up carries the first turn in its prompt; the tiny model has 64 positions, so keep it short.
    await page.fill('#max-new-tokens', '5');
    await page.fill('#question', 'why?');
    await page.click('#ask');
    await settled(5);
    shown = await messages();
    expect(shown[4]!.kind).toBe('answer');
    expect(shown[4]!.ids).toHaveLength(5);
    expect(await page.isHidden('#error')).toBe(true);
    const screenshot = process.env.BLIP2_DEMO_SCREENSHOT;
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  });

  it('reports a prompt that does not fit the model as an error and stays usable', async () => {
    await page.fill('#max-new-tokens', '40');
    await page.fill('#question', 'and then?');
    await page.click('#ask');
    await settled(7);
    expect(await page.textContent('#error')).toMatch(/exceeds the model's 64 positions/);
    expect((await messages())[6]!.kind).toBe('answer failed');
    expect(await page.isEnabled('#ask')).toBe(true);
    await page.click('#new-chat');
    expect(await messages()).toEqual([]);
  });

  it('lists the model it stored, loads it after a reload with no request, and deletes it', async () => {
    const rows = () =>
      page.$$eval('#stored-list tr', (trs) => trs.map((tr) => ({ url: (tr as HTMLElement).dataset.url, cells: Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '') })));
    const served = readdirSync(TINY_MODEL);
    const [listed, ...more] = await rows();
    expect(more).toEqual([]);
    expect(listed!.url).toBe(`${site.url}/models/tiny-blip2`);
    expect(listed!.cells[0]).toBe('tiny-blip2');
    expect(listed!.cells[2]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    expect(await page.textContent('#model-status')).toMatch(/downloaded .* into browser storage\.$/);
    expect(await page.textContent('#storage-usage')).toMatch(/^1 stored · this site uses .* of /);
    expect(served.length).toBeGreaterThan(0);

    // A new visit: the same URL reads every model file from browser storage.
    await page.reload();
    await page.waitForFunction(() => document.getElementById('adapter')!.textContent !== '–' && document.querySelectorAll('#stored-list tr').length === 1);
    requests = [];
    await loadModel(() => page.click('#stored-list tr button:text("Load")'));
    expect(requests.filter((r) => r.path.startsWith('/models/'))).toEqual([]);
    expect(await page.textContent('#model-status')).toMatch(/read from browser storage: nothing downloaded\.$/);
    await page.click('#sample');
    await page.click('#settings summary');
    await page.fill('#max-new-tokens', String(captionCase.greedy.new_tokens.length));
    await page.click('#caption');
    await settled(1);
    expect((await messages())[0]!.ids).toEqual(captionCase.greedy.new_tokens);

    await page.click('#stored-list tr button:text("Delete")');
    await page.waitForFunction(() => document.querySelectorAll('#stored-list tr').length === 0);
    expect(await page.isVisible('#stored-empty')).toBe(true);

    // A site out of quota: the error says what to do on this page, and the page stays usable.
    await page.evaluate(() => {
      const storage = navigator.storage as StorageManager & { realEstimate?: StorageManager['estimate'] };
      storage.realEstimate = storage.estimate;
      storage.estimate = async () => ({ usage: 0, quota: 1000 });
    });
    await page.click('#load');
    await page.waitForFunction(() => !document.getElementById('error')!.hidden && !(document.getElementById('load') as HTMLButtonElement).disabled);
    expect(await page.textContent('#error')).toMatch(/the browser lets this site store only .* untick "keep in this browser"/s);
    await page.evaluate(() => {
      const storage = navigator.storage as StorageManager & { realEstimate?: StorageManager['estimate'] };
      storage.estimate = storage.realEstimate!;
    });

    requests = [];
    await loadModel(() => page.click('#load'));
    expect(requests.some((r) => r.path === '/models/tiny-blip2/model.safetensors' && r.status === 200)).toBe(true);

    // Not stored: read over HTTP ranges, nothing appears in the list.
    await page.click('#stored-list tr button:text("Delete")');
    await page.waitForFunction(() => document.querySelectorAll('#stored-list tr').length === 0);
    await page.uncheck('#store-model');
    requests = [];
    await loadModel(() => page.click('#load'));
    expect(await page.textContent('#model-status')).toMatch(/read over the network \(not stored\)\.$/);
    expect(requests.filter((r) => r.path === '/models/tiny-blip2/model.safetensors' && r.method === 'GET').every((r) => r.status === 206)).toBe(true);
    expect(await page.$$('#stored-list tr')).toHaveLength(0);
    expect(pageErrors).toEqual([]);
    await page.click('#sample'); // a fresh image clears the messages for the next test
  });

  it('loads picked model files (Blobs, no server paths) and gives the same caption', async () => {
    const files = readdirSync(TINY_MODEL).filter((f) => f.endsWith('.json') || f.endsWith('.safetensors')).filter((f) => f !== 'expected.safetensors' && f !== 'cases.json');
    await page.selectOption('#dtype', 'f32');
    await loadModel(() => page.setInputFiles('#model-files', files.map((f) => join(TINY_MODEL, f))));
    expect(await page.textContent('#model-status')).toMatch(/^dropped files \(\d+ files, .*\): 0\.101 M parameters/);
    expect(await page.textContent('#weights')).toBe('f32');
    await page.fill('#max-new-tokens', String(captionCase.greedy.new_tokens.length));
    await page.click('#caption');
    await settled(1);
    expect((await messages())[0]!.ids).toEqual(captionCase.greedy.new_tokens);
    expect(await page.isHidden('#error')).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('fine-tunes the loaded model on a few dropped images with captions: the loss goes down, the caption changes', async () => {
    const before = (await messages())[0]!;
    const training = [
      ['chelsea.png', 'a photo of a cat'],
      ['camera.png', 'a man with a camera'],
      ['cell.png', 'cells under a microscope'],
      ['horse.png', 'a drawing of a horse'],
    ] as const;
    await page.setInputFiles('#train-files', training.map(([f]) => join(TINY_MODEL, f)));
    const inputs = await page.$$('#train-examples input');
    expect(inputs).toHaveLength(training.length);
    for (const [i, [, caption]] of training.entries()) await inputs[i]!.fill(caption);
    await page.fill('#train-steps', '12');
    await page.selectOption('#train-selection', 'all-but-vision');
    await page.click('#train');
    await page.waitForFunction(() => /done|stopped/.test(document.getElementById('train-status')!.textContent ?? '') || !document.getElementById('error')!.hidden, undefined, { timeout: 300_000 });
    expect(await page.isHidden('#error'), await page.textContent('#error') ?? '').toBe(true);
    const losses = ((await page.getAttribute('#train-status', 'data-losses')) ?? '').split(' ').map(Number);
    expect(losses).toHaveLength(12);
    expect(losses.at(-1)!).toBeLessThan(0.8 * losses[0]!);
    expect(await page.isVisible('#loss-chart')).toBe(true);
    await page.click('#caption');
    await settled(2);
    const after = (await messages())[1]!;
    expect(after.ids).not.toEqual(before.ids);
    expect(pageErrors).toEqual([]);
  });

  /** The caption's tokens transformers generates with the tiny model's weights quantized to q8 (quantized.json). */
  const q8Tokens = () =>
    fixture.optionalJson<{ schemes: { q8: { cases: { name: string; greedy: { new_tokens: number[] } }[] } } }>('quantized.json')!.schemes.q8.cases.find((c) => c.name === captionCase.name)!.greedy.new_tokens;

  it("quantizes to q8 while loading when asked, and captions with transformers' q8 tokens", async () => {
    const want = q8Tokens();
    await page.selectOption('#dtype', 'f32');
    await page.selectOption('#quantize', 'q8');
    await loadModel(() => page.click('#load'));
    expect(await page.textContent('#weights')).toBe('q8 (vision encoder and OPT layers), f32 elsewhere');
    await page.fill('#max-new-tokens', String(want.length));
    const before = (await messages()).length;
    await page.click('#caption');
    await settled(before + 1);
    expect((await messages())[before]!.ids).toEqual(want);
    expect(pageErrors).toEqual([]);
  });

  it('keeps the folder it quantizes in the browser: after a reload, Load from the list with q8 sends no model request and gives the q8 tokens', async () => {
    const want = q8Tokens();
    await page.check('#store-model');
    await loadModel(() => page.click('#load'));
    expect(await page.textContent('#model-status')).toMatch(/downloaded .* into browser storage\.$/);

    await page.reload();
    await page.waitForFunction(() => document.getElementById('adapter')!.textContent !== '–' && document.querySelectorAll('#stored-list tr').length === 1);
    await page.selectOption('#dtype', 'f32');
    await page.selectOption('#quantize', 'q8');
    requests = [];
    await loadModel(() => page.click('#stored-list tr button:text("Load")'));
    expect(requests.filter((r) => r.path.startsWith('/models/'))).toEqual([]);
    expect(await page.textContent('#model-status')).toMatch(/read from browser storage: nothing downloaded\.$/);
    expect(await page.textContent('#weights')).toBe('q8 (vision encoder and OPT layers), f32 elsewhere');
    await page.click('#sample');
    await page.click('#settings summary');
    await page.fill('#max-new-tokens', String(want.length));
    await page.click('#caption');
    await settled(1);
    expect((await messages())[0]!.ids).toEqual(want);
    expect(pageErrors).toEqual([]);
  });
});
