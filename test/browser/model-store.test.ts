// The browser model store in headless Chromium: a model fetched by URL is kept in the origin private file system,
// so later visits (new pages, a browser restart with the same profile) send no request for it and still generate
// transformers' tokens; damaged, partial and changed files are detected and fetched again; quota and deletion;
// quantized models (a folder written by `blip2 convert`, and a stored float folder quantized while loading) give the
// tokens transformers gives with the same quantized weights (quantized.json) when read back with no request.
// The static server counts requests per path; the store uses 64 KiB parts so the tiny checkpoint spans several.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleForBrowser, launchChromium } from '../support/browser.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeShardedCheckpoint } from '../../src/io/safetensors-writer.js';
import { convertCheckpoint } from '../../src/quant/convert.js';
import type { QuantScheme } from '../../src/quant/format.js';
import { greedyTokensOf } from '../support/cases.js';
import { loadFixtures } from '../support/fixtures.js';
import { serveStatic } from '../support/static-server.js';
import type { StoreTestApi, VisitOptions, VisitResult } from './store-entry.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = loadFixtures().find((f) => f.name === 'tiny-blip2')!;
const captionCase = fixture.manifest.cases[0]!;
const quantizedRef = JSON.parse(readFileSync(join(fixture.dir, 'quantized.json'), 'utf8')) as { schemes: Record<QuantScheme, { cases: { name: string; greedy: { new_tokens: number[] } }[] }> };
/** The caption's tokens transformers generates with the scheme's quantized weights, as the engine reports them. */
const quantizedTokens = (scheme: QuantScheme) =>
  greedyTokensOf(fixture, { ...captionCase, greedy: { ...captionCase.greedy, new_tokens: quantizedRef.schemes[scheme].cases.find((c) => c.name === captionCase.name)!.greedy.new_tokens } });
const PART = 64 * 1024;
/** The files of a HF model folder (the fixture folder also holds references and images the model never reads). */
const MODEL_FILE = /^(config|generation_config|preprocessor_config|processor_config|tokenizer|tokenizer_config|special_tokens_map|added_tokens)\.json$|^model.*\.safetensors(\.index\.json)?$/;

const work = mkdtempSync(join(tmpdir(), 'blip2-store-'));
const site = { dir: join(work, 'site'), model: join(work, 'model'), sharded: join(work, 'sharded'), q4: join(work, 'q4'), profile: join(work, 'profile') };
interface Logged {
  method: string;
  path: string;
  status: number;
  range: string | null;
}
let requests: Logged[] = [];
/** Bytes after which the next responses to model.safetensors GETs are cut (one entry per response). */
let cuts: number[] = [];
let server: Awaited<ReturnType<typeof serveStatic>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];
const warnings: string[] = [];
let modelUrl: string;
const weightsSize = () => statSync(join(site.model, 'model.safetensors')).size;

async function openPage(): Promise<void> {
  page = await browser.context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'warning' && m.text().includes('stored part') && warnings.push(m.text()));
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => 'blip2Store' in globalThis);
}

function call<K extends keyof StoreTestApi>(name: K, ...args: Parameters<StoreTestApi[K]>): Promise<Awaited<ReturnType<StoreTestApi[K]>>> {
  return page.evaluate(
    ([n, a]) => (globalThis as unknown as { blip2Store: Record<string, (...x: unknown[]) => Promise<unknown>> }).blip2Store[n]!(...a),
    [name, args] as [string, unknown[]],
  ) as Promise<Awaited<ReturnType<StoreTestApi[K]>>>;
}

/** One load + caption; returns what the page saw and the requests it made for model files. */
async function visit(options: Partial<VisitOptions> = {}): Promise<VisitResult & { modelRequests: Logged[] }> {
  requests = [];
  const result = await call('visit', {
    model: modelUrl,
    image: `${server.url}/images/${captionCase.image_file}`,
    shaders: `${server.url}/shaders/`,
    maxNewTokens: captionCase.greedy.new_tokens.length,
    partBytes: PART,
    ...options,
  });
  const folder = `${new URL(options.model ?? modelUrl).pathname}/`;
  return { ...result, modelRequests: requests.filter((r) => r.path.startsWith(folder)) };
}

const gets = (rs: Logged[], file: string, folder = 'model') => rs.filter((r) => r.method === 'GET' && r.path === `/${folder}/${file}`);

beforeAll(async () => {
  mkdirSync(site.dir);
  mkdirSync(site.model);
  mkdirSync(site.sharded);
  for (const f of readdirSync(fixture.dir).filter((f) => MODEL_FILE.test(f))) {
    copyFileSync(join(fixture.dir, f), join(site.model, f));
    if (!f.endsWith('.safetensors')) copyFileSync(join(fixture.dir, f), join(site.sharded, f));
  }
  // The same weights in three shards with an index, as large checkpoints come.
  const weights = await SafetensorsFile.open(join(fixture.dir, 'model.safetensors'));
  const tensors = await Promise.all(weights.keys().map(async (name) => ({ ...weights.info(name), data: await weights.readBytes(name) })));
  await weights.close();
  expect((await writeShardedCheckpoint(site.sharded, tensors, 160_000)).length).toBe(3);
  // What `blip2 convert --quantize q4 --dtype f32` writes: codes and f16 scales in shards, a quantization_config.
  await convertCheckpoint(fixture.dir, site.q4, { quantize: 'q4', dtype: 'f32' });
  await bundleForBrowser(join(root, 'test/browser/store-entry.ts'), site.dir);
  writeFileSync(join(site.dir, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
  server = await serveStatic(
    { '/shaders/': join(root, 'wgsl'), '/model/': site.model, '/sharded/': site.sharded, '/q4/': site.q4, '/images/': fixture.dir, '/': site.dir },
    {
      onRequest: (r) => requests.push(r),
      cutAfter: (r) => (r.method === 'GET' && r.path === '/model/model.safetensors' ? cuts.shift() : undefined),
    },
  );
  modelUrl = `${server.url}/model`;
  browser = await launchChromium({ profile: site.profile });
  await openPage();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('browser model store (OPFS, headless Chromium)', () => {
  it('first visit: downloads every model file once, stores it, and generates transformers\' tokens', async () => {
    expect((await call('info')).available).toBe(true);
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(v.modelRequests.length).toBeGreaterThan(0);
    // One plain GET per existing file (no HEAD, no ranges); 404s for the optional files the readers probe.
    for (const f of readdirSync(site.model)) expect(gets(v.modelRequests, f).map((r) => [r.status, r.range])).toEqual([[200, null]]);
    expect(v.modelRequests.filter((r) => r.method !== 'GET')).toEqual([]);
    expect(v.downloads['model.safetensors']).toEqual({ loadedBytes: weightsSize(), totalBytes: weightsSize() });

    const [stored, ...others] = await call('list');
    expect(others).toEqual([]);
    expect(stored).toMatchObject({ url: modelUrl, name: 'model', complete: true });
    const weights = stored!.files.find((f) => f.name === 'model.safetensors')!;
    expect(weights).toMatchObject({ size: weightsSize(), storedBytes: weightsSize(), complete: true, missing: false });
    expect(stored!.storedBytes).toBe(readdirSync(site.model).reduce((n, f) => n + statSync(join(site.model, f)).size, 0));
    expect(stored!.files.filter((f) => f.missing).map((f) => f.name)).toContain('model.safetensors.index.json');
    console.log(`first visit: ${v.modelRequests.length} model requests, load ${v.loadMs.toFixed(0)} ms, ${stored!.files.length} files recorded, ${stored!.storedBytes} bytes stored`);
  });

  it('second visit (a new page): no request for any model file, the same tokens', async () => {
    await page.close();
    await openPage();
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(v.modelRequests).toEqual([]);
    expect(v.downloads).toEqual({});
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
    console.log(`second visit: 0 model requests, load ${v.loadMs.toFixed(0)} ms (every part checksummed)`);
  });

  it('after a browser restart with the same profile: still no request, the same tokens', async () => {
    await browser.close();
    browser = await launchChromium({ profile: site.profile });
    await openPage();
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(v.modelRequests).toEqual([]);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
  });

  it('a truncated stored part is detected and fetched again alone (one range request), not used', async () => {
    expect(await call('damage', { url: modelUrl, file: 'model.safetensors', part: 3, how: 'truncate' })).toBe(PART / 2);
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(v.modelRequests.map((r) => [r.method, r.path, r.status, r.range])).toEqual([['GET', '/model/model.safetensors', 206, `bytes=${3 * PART}-${4 * PART - 1}`]]);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(warnings.at(-1)).toMatch(/stored part 3 is damaged \(32768 bytes instead of 65536\)/);
  });

  it('a corrupted stored part (same size) fails its checksum when first read and is fetched again alone; verify: false checks sizes only', async () => {
    await call('damage', { url: modelUrl, file: 'model.safetensors', part: 5, how: 'flip' });
    const sizesOnly = await visit({ cache: { verify: false } });
    expect(sizesOnly.modelRequests).toEqual([]);
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(v.modelRequests.map((r) => [r.status, r.range])).toEqual([[206, `bytes=${5 * PART}-${6 * PART - 1}`]]);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(warnings.at(-1)).toMatch(/stored part 5 is damaged \(its checksum differs/);
    expect((await visit()).modelRequests).toEqual([]);
  });

  it('deleting the model empties the list, and the next visit downloads it again', async () => {
    expect(await call('remove', `${modelUrl}/`)).toBe(true);
    expect(await call('list')).toEqual([]);
    expect(await call('remove', modelUrl)).toBe(false);
    const v = await visit();
    expect(v.error).toBeUndefined();
    expect(gets(v.modelRequests, 'model.safetensors').map((r) => r.status)).toEqual([200]);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
  });

  it('an interrupted download keeps its whole parts and resumes with a range request', async () => {
    await call('remove', modelUrl);
    // Every response cut: the load fails after three attempts, each resuming at the last whole part it stored.
    // (How much of a cut response reaches the page varies, so the test reads the resume points off the requests.)
    cuts = [150_000, 150_000, 150_000];
    const failed = await visit();
    expect(failed.error).toMatchObject({ name: 'ModelStorageError', code: 'interrupted' });
    expect(failed.error!.message).toMatch(/download interrupted 3 times .* are stored and the next load resumes from there/);
    const attempts = gets(failed.modelRequests, 'model.safetensors').map((r) => r.range);
    expect(attempts).toHaveLength(3);
    expect(attempts[0]).toBeNull();
    const resumedAt = attempts.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? '')?.[1]));
    for (const at of resumedAt) expect(at % PART).toBe(0);
    expect(resumedAt[1]).toBeGreaterThanOrEqual(resumedAt[0]!);
    const partial = (await call('list'))[0]!.files.find((f) => f.name === 'model.safetensors')!;
    expect(partial).toMatchObject({ complete: false, size: weightsSize() });
    expect(partial.storedBytes % PART).toBe(0);
    expect(partial.storedBytes).toBeGreaterThanOrEqual(resumedAt[1]!);
    expect(partial.storedBytes).toBeGreaterThan(0);

    // The next visit asks only for the rest; one more cut within it is resumed in the same load.
    cuts = [10_000];
    const v = await visit();
    expect(v.error).toBeUndefined();
    const rest = gets(v.modelRequests, 'model.safetensors');
    expect(rest.map((r) => r.status)).toEqual([206, 206]);
    expect(rest[0]!.range).toBe(`bytes=${partial.storedBytes}-`);
    expect(Number(/^bytes=(\d+)-$/.exec(rest[1]!.range!)![1]) % PART).toBe(0);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);
    const [done] = await call('list');
    expect(done!.complete).toBe(true);
    expect(done!.files.find((f) => f.name === 'model.safetensors')).toMatchObject({ complete: true, storedBytes: weightsSize() });
  });

  it('a file that changed on the server: used as stored by default, downloaded again with revalidate; a changed file never resumes onto old parts', async () => {
    const weights = join(site.model, 'model.safetensors');
    const later = new Date(Date.now() + 60_000);
    utimesSync(weights, later, later); // a new ETag and Last-Modified
    expect((await visit()).modelRequests).toEqual([]);
    const v = await visit({ cache: { revalidate: true } });
    expect(v.error).toBeUndefined();
    // One HEAD per stored file, the 404s asked again, and only the changed file fetched.
    const stored = readdirSync(site.model);
    expect(v.modelRequests.filter((r) => r.method === 'HEAD').map((r) => r.path).sort()).toEqual(stored.map((f) => `/model/${f}`).sort());
    expect(v.modelRequests.filter((r) => r.method === 'GET' && r.status === 200).map((r) => r.path)).toEqual(['/model/model.safetensors']);
    expect(v.tokens).toEqual(captionCase.greedy.new_tokens);

    // A partial download whose file then changes: If-Range makes the server send the whole new file.
    await call('remove', modelUrl);
    cuts = [150_000, 150_000, 150_000];
    expect((await visit()).error?.code).toBe('interrupted');
    const storedBefore = (await call('list'))[0]!.files.find((f) => f.name === 'model.safetensors')!.storedBytes;
    expect(storedBefore).toBeGreaterThan(0);
    const evenLater = new Date(Date.now() + 120_000);
    utimesSync(weights, evenLater, evenLater);
    const resumed = await visit();
    expect(resumed.error).toBeUndefined();
    expect(gets(resumed.modelRequests, 'model.safetensors').map((r) => [r.status, r.range])).toEqual([[200, `bytes=${storedBefore}-`]]);
    expect(resumed.tokens).toEqual(captionCase.greedy.new_tokens);

    // A damaged part whose file changed on the server cannot be repaired from it: a clear error, then a fresh download.
    await call('damage', { url: modelUrl, file: 'model.safetensors', part: 1, how: 'flip' });
    const latest = new Date(Date.now() + 180_000);
    utimesSync(weights, latest, latest);
    const stale = await visit();
    expect(stale.error).toMatchObject({ name: 'ModelStorageError', code: 'changed' });
    expect(stale.error!.message).toMatch(/stored part 1 is damaged and the server's file is no longer the one stored/);
    const fresh = await visit();
    expect(fresh.error).toBeUndefined();
    expect(gets(fresh.modelRequests, 'model.safetensors').map((r) => [r.status, r.range])).toEqual([[200, null]]);
    expect(fresh.tokens).toEqual(captionCase.greedy.new_tokens);
  });

  it('refuses a model that does not fit the quota with a clear error (a sharded one before its first shard), stores nothing of it, and loads with cache: false', async () => {
    await call('remove', modelUrl);
    const v = await visit({ fakeEstimate: { usage: 0, quota: 200_000 } });
    expect(v.error).toMatchObject({ name: 'ModelStorageError', code: 'quota' });
    expect(v.error!.message).toMatch(/needs [\d.]+ KiB but the browser lets this site store only .* more .* cache: false/);
    const weights = (await call('list'))[0]?.files.find((f) => f.name === 'model.safetensors');
    expect(weights?.storedBytes ?? 0).toBe(0);

    // A sharded model whose weights (total_size in its index) do not fit is refused before its first shard.
    const sharded = `${server.url}/sharded`;
    const big = await visit({ model: sharded, fakeEstimate: { usage: 0, quota: 300_000 } });
    expect(big.error).toMatchObject({ name: 'ModelStorageError', code: 'quota' });
    expect(big.error!.message).toMatch(/model-00001-of-00003\.safetensors: the model's weight files \(total_size in its index\) need [\d.]+ KiB but the browser lets this site store only 293\.0 KiB more/);
    expect(requests.filter((r) => r.path.startsWith('/sharded/model-'))).toEqual([]);
    const fits = await visit({ model: sharded });
    expect(fits.error).toBeUndefined();
    expect(fits.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(requests.filter((r) => r.path.startsWith('/sharded/model-') && r.status === 200)).toHaveLength(3);
    const again = await visit({ model: sharded });
    expect(requests.filter((r) => r.path.startsWith('/sharded/'))).toEqual([]);
    expect(again.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(await call('remove', sharded)).toBe(true);

    const uncached = await visit({ cache: false });
    expect(uncached.error).toBeUndefined();
    expect(uncached.tokens).toEqual(captionCase.greedy.new_tokens);
    expect(gets(uncached.modelRequests, 'model.safetensors').every((r) => r.status === 206)).toBe(true);
    expect((await call('list'))[0]?.files.find((f) => f.name === 'model.safetensors')?.storedBytes ?? 0).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('a quantized model: a converted q4 folder is stored, then read back with no request; a stored float folder quantized to q8 while loading; both give transformers\' quantized tokens', async () => {
    const q4 = `${server.url}/q4`;
    const first = await visit({ model: q4 });
    expect(first.error).toBeUndefined();
    expect(first.schemes).toEqual(['q4']);
    expect(first.tokens).toEqual(quantizedTokens('q4'));
    for (const f of readdirSync(site.q4)) expect(gets(first.modelRequests, f, 'q4').map((r) => [r.status, r.range])).toEqual([[200, null]]);
    const stored = (await call('list')).find((m) => m.url === q4);
    expect(stored).toMatchObject({ complete: true, storedBytes: readdirSync(site.q4).reduce((n, f) => n + statSync(join(site.q4, f)).size, 0) });

    await page.close();
    await openPage();
    const next = await visit({ model: q4 });
    expect(next.error).toBeUndefined();
    expect(next.modelRequests).toEqual([]);
    expect(next.schemes).toEqual(['q4']);
    expect(next.tokens).toEqual(quantizedTokens('q4'));
    // The folder's own scheme decides; a contradicting choice is refused from storage too, with no request.
    const contradicting = await visit({ model: q4, quantize: 'q8' });
    expect(contradicting.error?.name).toBe('QuantizationConfigError');
    expect(contradicting.modelRequests).toEqual([]);

    // Quantizing while loading reads the stored float folder: stored once, then no request.
    const float = await visit({ quantize: 'q8' });
    expect(float.error).toBeUndefined();
    await page.close();
    await openPage();
    const q8 = await visit({ quantize: 'q8' });
    expect(q8.error).toBeUndefined();
    expect(q8.modelRequests).toEqual([]);
    expect(q8.schemes).toEqual(['q8']);
    expect(q8.tokens).toEqual(quantizedTokens('q8'));
    expect(float.tokens).toEqual(quantizedTokens('q8'));
    console.log(`quantized: q4 folder ${first.modelRequests.length} model requests on the first visit, 0 on the next (load ${next.loadMs.toFixed(0)} ms); float folder quantized to q8 from storage: 0 requests`);
    expect(pageErrors).toEqual([]);
  });
});
