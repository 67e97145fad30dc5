// Runs in the page for bench/browser-storage.ts: reads one large file the ways a model load can.
import { getPlatform } from '../src/platform/index.js';
import { withModelStorage } from '../src/platform/model-store/index.js';

export interface StorageCase {
  name: string;
  /** Download (store) and check, before the first byte is read; 0 when nothing precedes reading. */
  openMs: number;
  /** Reading the whole file in `chunkBytes` pieces, in order. */
  readMs: number;
}

async function readAll(open: () => Promise<{ size: number; read(o: number, n: number): Promise<Uint8Array> }>, chunkBytes: number): Promise<{ openMs: number; readMs: number }> {
  const t0 = performance.now();
  const source = await open();
  const t1 = performance.now();
  let checksum = 0;
  for (let o = 0; o < source.size; o += chunkBytes) checksum ^= (await source.read(o, Math.min(chunkBytes, source.size - o)))[0]!;
  const t2 = performance.now();
  if (checksum < 0) throw new Error('unreachable');
  return { openMs: t1 - t0, readMs: t2 - t1 };
}

/** `visit`: 'first' stores the file (after clearing what earlier runs stored), 'again' reads the stored copy. */
async function run(o: { folder: string; file: string; chunkBytes: number; visit: 'first' | 'again' }): Promise<StorageCase[]> {
  const platform = await getPlatform();
  const url = `${o.folder}/${o.file}`;
  const out: StorageCase[] = [];
  const viaStore = async (name: string, cache: { verify: boolean }) => {
    const r = await withModelStorage(o.folder, { cache }, () => readAll(() => platform.openBytes(url), o.chunkBytes));
    out.push({ name, ...r });
  };
  if (o.visit === 'first') {
    const root = await navigator.storage.getDirectory();
    await root.removeEntry('blip2-webgpu-models', { recursive: true }).catch(() => {});
    await caches.delete('bench');
    out.push({ name: 'HTTP range requests (cache: false)', ...(await readAll(() => platform.openBytes(url), o.chunkBytes)) });
    await viaStore('OPFS store, first visit (download, SHA-256, write)', { verify: true });
    // The alternative considered: the Cache API keeps a whole 200 response and reads slices of its Blob.
    const cache = await caches.open('bench');
    const t0 = performance.now();
    await cache.put(url, await fetch(url, { cache: 'no-store' }));
    const putMs = performance.now() - t0;
    const r = await readAll(async () => {
      const blob = await (await cache.match(url))!.blob();
      return { size: blob.size, read: async (off: number, n: number) => new Uint8Array(await blob.slice(off, off + n).arrayBuffer()) };
    }, o.chunkBytes);
    out.push({ name: 'Cache API, first visit (download, put)', openMs: putMs + r.openMs, readMs: r.readMs });
  } else {
    await viaStore('OPFS store, next visit, size checks only (verify: false)', { verify: false });
    await viaStore('OPFS store, next visit, SHA-256 checked while reading', { verify: true });
    await viaStore('OPFS store, same page again (parts already checked)', { verify: true });
    const cache = await caches.open('bench');
    const r = await readAll(async () => {
      const blob = await (await cache.match(url))!.blob();
      return { size: blob.size, read: async (off: number, n: number) => new Uint8Array(await blob.slice(off, off + n).arrayBuffer()) };
    }, o.chunkBytes);
    out.push({ name: 'Cache API, next visit', ...r });
  }
  return out;
}

(globalThis as { storageBench?: typeof run }).storageBench = run;
