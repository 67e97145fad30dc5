// The browser platform's byte sources (URL with HEAD + Range, Blob), run under Node's fetch against local servers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserPlatform } from '../../src/platform/browser.js';
import { serveStatic } from '../support/static-server.js';

const dir = mkdtempSync(join(tmpdir(), 'blip2-url-source-'));
const data = randomBytes(100_000);
const ranges: (string | null)[] = [];
let site: Awaited<ReturnType<typeof serveStatic>>;
let odd: Server;
let oddUrl: string;

beforeAll(async () => {
  writeFileSync(join(dir, 'data.bin'), data);
  site = await serveStatic({ '/': dir }, { onRequest: (r) => r.method === 'GET' && ranges.push(r.range) });
  // Servers that misbehave: no Content-Length, or Range ignored on a large file (whole body every time).
  odd = createServer((req, res) => {
    if (req.url === '/no-length') {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      res.end(req.method === 'HEAD' ? undefined : 'abc');
    } else if (req.url === '/no-ranges-large') {
      res.writeHead(200, { 'content-length': String(200 * 1024 * 1024) });
      if (req.method === 'HEAD') return void res.end();
      const chunk = Buffer.alloc(1024 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      pump();
    } else if (req.url === '/no-ranges-small') {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(req.method === 'HEAD' ? undefined : data);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
  const addr = odd.address();
  oddUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

afterAll(async () => {
  await site?.close();
  odd?.closeAllConnections();
  await new Promise<void>((r) => (odd ? odd.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

describe('browser platform byte sources', () => {
  it('reads a URL with HEAD for the size and one Range request per read', async () => {
    const src = await browserPlatform.openBytes(`${site.url}/data.bin`);
    expect(src.size).toBe(data.length);
    ranges.length = 0;
    expect(Buffer.from(await src.read(12_345, 4_321))).toEqual(data.subarray(12_345, 12_345 + 4_321));
    expect(Buffer.from(await src.read(data.length - 1, 1))).toEqual(data.subarray(data.length - 1));
    expect(await src.read(5, 0)).toHaveLength(0);
    expect(ranges).toEqual(['bytes=12345-16665', `bytes=${data.length - 1}-${data.length - 1}`]);
    await expect(src.read(data.length - 10, 11)).rejects.toThrow(/outside the file/);
    await src.close();
  });

  it('reports a missing file with its HTTP status', async () => {
    await expect(browserPlatform.openBytes(`${site.url}/nope.bin`)).rejects.toThrow(/HTTP 404/);
  });

  it('refuses a server that sends no Content-Length', async () => {
    await expect(browserPlatform.openBytes(`${oddUrl}/no-length`)).rejects.toThrow(/no usable Content-Length/);
  });

  it('takes a slice of the whole body from a server without ranges, for small files only', async () => {
    const small = await browserPlatform.openBytes(`${oddUrl}/no-ranges-small`);
    expect(Buffer.from(await small.read(100, 50))).toEqual(data.subarray(100, 150));
    const large = await browserPlatform.openBytes(`${oddUrl}/no-ranges-large`);
    expect(large.size).toBe(200 * 1024 * 1024);
    await expect(large.read(0, 16)).rejects.toThrow(/ignores HTTP Range requests/);
  });

  it('reads Blob slices', async () => {
    const src = await browserPlatform.openBytes(new Blob([data]));
    expect(src.size).toBe(data.length);
    expect(Buffer.from(await src.read(99_990, 10))).toEqual(data.subarray(99_990));
    await expect(src.read(99_990, 11)).rejects.toThrow(/outside the file/);
  });

  it('test server: suffix ranges, unsatisfiable ranges (416) and HEAD', async () => {
    const url = `${site.url}/data.bin`;
    const suffix = await fetch(url, { headers: { Range: 'bytes=-10' } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe(`bytes ${data.length - 10}-${data.length - 1}/${data.length}`);
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(data.subarray(data.length - 10));
    const beyond = await fetch(url, { headers: { Range: `bytes=${data.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${data.length}`);
    const head = await fetch(url, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-length'), head.headers.get('accept-ranges')]).toEqual([200, String(data.length), 'bytes']);
  });
});
