/**
 * A whole model folder loaded in headless Chromium over HTTP ranges and through the browser's model store (first
 * visit: download and store; next visit in a new page: read from storage, every part checksummed; again in that
 * page), with the requests each load sent for model files and a hash of every weight as loaded on the device,
 * which must be the same on every path.
 *
 *   flock /work/fullsize.lock npx tsx bench/browser-store-load.ts --model /work/ckpt/blip2-realdims-2L [--dtype f16] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleForBrowser, launchChromium } from '../test/support/browser.js';
import { serveStatic } from '../test/support/static-server.js';
import type { StoreLoadResult } from './browser-store-load-entry.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, dtype: { type: 'string', default: 'f16' }, json: { type: 'string' } } });
if (!values.model) throw new Error('--model DIR is required (a HF BLIP-2 folder)');
if (values.dtype !== 'f16' && values.dtype !== 'f32') throw new Error(`--dtype must be f16 or f32, got ${values.dtype}`);
const dtype = values.dtype;
const root = fileURLToPath(new URL('../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'blip2-store-load-'));
await bundleForBrowser(join(root, 'bench/browser-store-load-entry.ts'), work);
writeFileSync(join(work, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
const requests: { method: string; path: string; status: number }[] = [];
const server = await serveStatic({ '/shaders/': join(root, 'wgsl'), '/model/': resolve(values.model), '/': work }, { onRequest: (r) => requests.push(r) });
const browser = await launchChromium();
const rows: (StoreLoadResult & { name: string; requests: number })[] = [];
try {
  const plan: { page: number; name: string; cache: boolean }[] = [
    { page: 1, name: 'HTTP range requests (cache: false)', cache: false },
    { page: 1, name: 'model store, first visit (download, store, load)', cache: true },
    { page: 2, name: 'model store, next visit (new page; parts checksummed)', cache: true },
    { page: 2, name: 'model store, same page again', cache: true },
  ];
  let page = null as Awaited<ReturnType<typeof browser.context.newPage>> | null;
  let pageNo = 0;
  for (const step of plan) {
    if (step.page !== pageNo) {
      await page?.close();
      page = await browser.context.newPage();
      await page.goto(`${server.url}/index.html`);
      await page.waitForFunction(() => 'storeLoad' in globalThis);
      pageNo = step.page;
    }
    requests.length = 0;
    console.log(`${step.name}...`);
    const options = { model: `${server.url}/model`, shaders: `${server.url}/shaders/`, dtype, cache: step.cache };
    const r = await page!.evaluate((o) => (globalThis as unknown as { storeLoad: (x: typeof o) => Promise<StoreLoadResult> }).storeLoad(o), options);
    const model = requests.filter((q) => q.path.startsWith('/model/'));
    rows.push({ ...r, name: step.name, requests: model.length });
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(work, { recursive: true, force: true });
}
console.log(`\n${values.model}, ${dtype} weights, headless Chromium (SwiftShader), ${cpus()[0]?.model ?? '?'} x${cpus().length}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('| path | load (s) | model requests | downloaded into storage | weights hash |');
console.log('|---|---:|---:|---:|---|');
for (const r of rows) console.log(`| ${r.name} | ${(r.loadMs / 1000).toFixed(1)} | ${r.requests} | ${(r.downloadedBytes / 1e6).toFixed(1)} MB | ${r.weightsHash} |`);
const same = rows.every((r) => r.weightsHash === rows[0]!.weightsHash);
console.log(same ? 'every path loaded identical weights' : 'MISMATCH: the paths loaded different weights');
if (values.json) await writeFile(values.json, JSON.stringify({ bench: 'browser-store-load', model: values.model, dtype, machine: { cpu: cpus()[0]?.model, cores: cpus().length, load_average: loadavg() }, rows }, null, 2));
if (!same) process.exitCode = 1;
