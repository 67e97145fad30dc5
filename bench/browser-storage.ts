/**
 * How a model file fetched by URL is read in a browser: over HTTP ranges, from the OPFS model store (first visit:
 * download, hash and write; next visit: check and read) and, for comparison, from the Cache API. Headless
 * Chromium, one file of --mib MiB (random bytes) served from 127.0.0.1, read whole in 16 MiB pieces as the loader does.
 *
 *   npx tsx bench/browser-storage.ts [--mib 512] [--part-mib 32] [--json FILE]
 *
 * On a shared machine every path varies run to run: compare rows of one run (the "warm" rounds alternate the
 * OPFS store and the Cache API for that reason), and rerun.
 */
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, writeSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleForBrowser, launchChromium } from '../test/support/browser.js';
import { serveStatic } from '../test/support/static-server.js';
import type { StorageCase } from './browser-storage-entry.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '512' }, 'part-mib': { type: 'string' }, json: { type: 'string' } } });
const mib = Number(values.mib);
if (!Number.isInteger(mib) || mib < 1) throw new Error(`--mib needs a positive integer, got ${values.mib}`);
const partMib = values['part-mib'] === undefined ? undefined : Number(values['part-mib']);
if (partMib !== undefined && !(partMib > 0)) throw new Error(`--part-mib needs a positive number, got ${values['part-mib']}`);
const root = fileURLToPath(new URL('../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'blip2-storage-bench-'));
const bytes = mib * 1024 * 1024;
const fd = openSync(join(work, 'weights.bin'), 'w');
const block = Buffer.alloc(16 * 1024 * 1024);
for (let done = 0; done < bytes; done += block.length) writeSync(fd, randomFillSync(block), 0, Math.min(block.length, bytes - done));
closeSync(fd);
await bundleForBrowser(join(root, 'bench/browser-storage-entry.ts'), work);
writeFileSync(join(work, 'index.html'), '<!doctype html><meta charset="utf-8"><script type="module" src="/bundle.js"></script>');
const server = await serveStatic({ '/data/': work, '/': work });
const browser = await launchChromium();
const cases: StorageCase[] = [];
try {
  for (const visit of ['first', 'again'] as const) {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => 'storageBench' in globalThis);
    const options = { folder: `${server.url}/data`, file: 'weights.bin', chunkBytes: 16 * 1024 * 1024, partBytes: partMib && Math.round(partMib * 1024 * 1024), visit };
    cases.push(...(await page.evaluate((o) => (globalThis as unknown as { storageBench: (x: typeof o) => Promise<StorageCase[]> }).storageBench(o), options)));
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
  rmSync(work, { recursive: true, force: true });
}

const rate = (ms: number) => (ms > 0 ? (bytes / 1e6 / (ms / 1000)).toFixed(0) : '-');
console.log(`${mib} MiB file, 16 MiB reads, headless Chromium, ${cpus()[0]?.model ?? '?'} x${cpus().length}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('| case | before reading (ms) | reading (ms) | total MB/s |');
console.log('|---|---:|---:|---:|');
for (const c of cases) console.log(`| ${c.name} | ${c.openMs.toFixed(0)} | ${c.readMs.toFixed(0)} | ${rate(c.openMs + c.readMs)} |`);
if (values.json) {
  const report = { bench: 'browser-storage', file_bytes: bytes, chunk_bytes: 16 * 1024 * 1024, part_bytes: partMib ? Math.round(partMib * 1024 * 1024) : 32 * 1024 * 1024, load_average: loadavg(), machine: { cpu: cpus()[0]?.model, cores: cpus().length }, browser: 'headless Chromium (Debian)', cases };
  await writeFile(values.json, JSON.stringify(report, null, 2));
  console.log(`wrote ${values.json}`);
}
