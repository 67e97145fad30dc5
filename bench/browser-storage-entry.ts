// Runs in the page for bench/browser-storage.ts: reads one large file the ways a model load can.
import { getPlatform } from '../src/platform/index.js';
import { withModelStorage } from '../src/platform/model-store/scope.js';
import { setStorePartBytes } from '../src/platform/model-store/store.js';

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

/** A dedicated worker reading one OPFS file through a sync access handle (the alternative to File slices). */
const SYNC_READER = `
let handle = null;
onmessage = async (e) => {
  const { op, name, offset, length } = e.data;
  if (op === 'open') {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('bench-raw');
    handle = await (await dir.getFileHandle(name)).createSyncAccessHandle();
    postMessage({ size: handle.getSize() });
  } else if (op === 'read') {
    const buf = new Uint8Array(length);
    handle.read(buf, { at: offset });
    postMessage({ buf }, [buf.buffer]);
  } else { handle.close(); postMessage({}); }
};`;

/** The raw read paths, on one plain OPFS file: File slices from the page vs a sync access handle in a worker. */
async function rawReads(url: string, chunkBytes: number): Promise<StorageCase[]> {
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle('bench-raw', { create: true });
  const handle = await dir.getFileHandle('raw', { create: true });
  const w = await handle.createWritable();
  await (await fetch(url, { cache: 'no-store' })).body!.pipeTo(w);
  const slices = await readAll(async () => {
    const file = await handle.getFile();
    return { size: file.size, read: async (o: number, n: number) => new Uint8Array(await file.slice(o, o + n).arrayBuffer()) };
  }, chunkBytes);
  const worker = new Worker(URL.createObjectURL(new Blob([SYNC_READER], { type: 'text/javascript' })));
  const call = (m: object) => new Promise<{ size?: number; buf?: Uint8Array }>((resolve) => ((worker.onmessage = (e) => resolve(e.data)), worker.postMessage(m)));
  const sync = await readAll(async () => {
    const { size } = await call({ op: 'open', name: 'raw' });
    return { size: size!, read: async (offset: number, length: number) => (await call({ op: 'read', offset, length })).buf! };
  }, chunkBytes);
  await call({ op: 'close' });
  worker.terminate();
  await root.removeEntry('bench-raw', { recursive: true });
  return [
    { name: 'one OPFS file, File.slice() reads in the page', ...slices },
    { name: 'one OPFS file, createSyncAccessHandle() reads in a worker', ...sync },
  ];
}

/** `visit`: 'first' stores the file (after clearing what earlier runs stored), 'again' reads the stored copy. */
async function run(o: { folder: string; file: string; chunkBytes: number; partBytes?: number; visit: 'first' | 'again' }): Promise<StorageCase[]> {
  const platform = await getPlatform();
  if (o.partBytes) setStorePartBytes(o.partBytes);
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
    await viaStore('OPFS store, first visit (download, checksum, write)', { verify: true });
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
    await viaStore('OPFS store, next visit, checksums checked while reading', { verify: true });
    await viaStore('OPFS store, same page again (parts already checked)', { verify: true });
    const cache = await caches.open('bench');
    const r = await readAll(async () => {
      const blob = await (await cache.match(url))!.blob();
      return { size: blob.size, read: async (off: number, n: number) => new Uint8Array(await blob.slice(off, off + n).arrayBuffer()) };
    }, o.chunkBytes);
    out.push({ name: 'Cache API, next visit', ...r });
    // Warm, alternating: the same reads again, so that neither side gains from running later in the page.
    for (let round = 1; round <= 3; round++) {
      await viaStore(`OPFS store, warm, round ${round}`, { verify: true });
      const again = await readAll(async () => {
        const blob = await (await cache.match(url))!.blob();
        return { size: blob.size, read: async (off: number, n: number) => new Uint8Array(await blob.slice(off, off + n).arrayBuffer()) };
      }, o.chunkBytes);
      out.push({ name: `Cache API, warm, round ${round}`, ...again });
    }
    out.push(...(await rawReads(url, o.chunkBytes)));
  }
  return out;
}

(globalThis as { storageBench?: typeof run }).storageBench = run;
