import { BlobSource, checkRange } from './blob-source.js';
import { storedFolderFor } from './model-store/scope.js';
import type { ByteSink, ByteSource, Platform } from './types.js';

export { checkRange };

/** Files up to this size still load from servers that answer a range request with the whole file. */
const WHOLE_FILE_FALLBACK_BYTES = 64 * 1024 * 1024;

/** Reads a remote file with HTTP range requests, so a 10 GB shard never sits in memory. */
class UrlSource implements ByteSource {
  constructor(private readonly url: string, readonly size: number) {}
  get name(): string {
    return this.url;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.url, this.size, offset, length);
    if (length === 0) return new Uint8Array(0);
    const res = await fetch(this.url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
    if (res.status !== 206 && res.status !== 200) throw new Error(`${this.url}: HTTP ${res.status} for a range request`);
    if (res.status === 200 && this.size > WHOLE_FILE_FALLBACK_BYTES) {
      // A server that ignores Range would send the whole (multi-GB) file for every chunk.
      await res.body?.cancel().catch(() => {});
      throw new Error(`${this.url}: the server ignores HTTP Range requests; serve large files from a server that supports them`);
    }
    const buf = new Uint8Array(await res.arrayBuffer());
    const data = res.status === 200 ? buf.subarray(offset, offset + length) : buf;
    if (data.byteLength !== length) throw new Error(`${this.url}: short range read (${data.byteLength} of ${length} bytes)`);
    return data;
  }
  async close(): Promise<void> {}
}

export const browserPlatform: Platform = {
  kind: 'browser',
  async gpu() {
    const nav = (globalThis as { navigator?: Navigator }).navigator;
    return nav?.gpu ?? null;
  },
  async readText(url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot load ${url.href}: HTTP ${res.status}`);
    return res.text();
  },
  async openBytes(location) {
    if (typeof Blob !== 'undefined' && location instanceof Blob) {
      return new BlobSource(location, location instanceof File ? location.name : 'blob');
    }
    const stored = storedFolderFor(location);
    if (stored) return stored.open();
    const url = String(location);
    const head = await fetch(url, { method: 'HEAD' });
    if (!head.ok) throw new Error(`${url}: HTTP ${head.status}`);
    const length = head.headers.get('content-length');
    const size = length === null ? NaN : Number(length);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`${url}: the server sent no usable Content-Length (${length ?? 'none'})`);
    return new UrlSource(url, size);
  },
  async createSink(): Promise<ByteSink> {
    throw new Error('writing files is only supported in Node.js');
  },
  noAdapterHelp:
    'This browser exposes no WebGPU adapter. Use a browser with WebGPU enabled (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu; Firefox: dom.webgpu.enabled; Safari 26+).',
};
