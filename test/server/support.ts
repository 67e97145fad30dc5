import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixturePath } from '../paths.js';

export const CHELSEA = new Uint8Array(readFileSync(fixturePath('tiny-blip2', 'chelsea.png')));
export const CAMERA = new Uint8Array(readFileSync(fixturePath('tiny-blip2', 'camera.png')));

export function dataUrl(bytes: Uint8Array, type = 'image/png'): string {
  return `data:${type};base64,${Buffer.from(bytes).toString('base64')}`;
}

/** A valid PNG header that claims a size, with no pixel data behind it. */
export function pngHeader(width: number, height: number): Uint8Array {
  const b = new Uint8Array(33);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  const v = new DataView(b.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  b[24] = 8;
  b[25] = 2;
  return b;
}

export interface FileServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serves fixed paths on 127.0.0.1: `/chelsea.png`, `/redirect` (-> /chelsea.png), `/missing` (404). */
export async function startImageServer(): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/chelsea.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': CHELSEA.length });
      res.end(CHELSEA);
    } else if (req.url === '/redirect') {
      res.writeHead(302, { location: '/chelsea.png' });
      res.end();
    } else if (req.url?.startsWith('/redirect-to/')) {
      res.writeHead(302, { location: decodeURIComponent(req.url.slice('/redirect-to/'.length)) });
      res.end();
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A user message with an image (and optional text) as the OpenAI API takes it. */
export function imageMessage(url: string, text?: string) {
  const parts: ({ type: 'image_url'; image_url: { url: string } } | { type: 'text'; text: string })[] = [{ type: 'image_url', image_url: { url } }];
  if (text !== undefined) parts.push({ type: 'text', text });
  return { role: 'user' as const, content: parts };
}

export interface Posted {
  status: number;
  text: string;
  json: () => Record<string, any>;
}

/** POSTs a chat completion body to `baseUrl` and reads the whole answer. */
export async function postCompletion(baseUrl: string, body: unknown): Promise<Posted> {
  const res = await fetch(`${baseUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, any> };
}

/** The data events of a server-sent event stream, parsed ([DONE] as the string). */
export function sseEvents(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((block) => block.trim())
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

/** Resolves once the server's /health counts `count` requests running (the engine has them, not the socket). */
export async function waitUntilRunning(baseUrl: string, count = 1, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await (await fetch(`${baseUrl}/health`)).json()) as { running: number };
    if (health.running >= count) return;
    if (Date.now() > deadline) throw new Error(`no request running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Counts the calls of `pipeline.generate` (one per model batch) until `restore()`. */
export function countGenerateCalls<P extends { generate: (...args: never[]) => unknown }>(pipeline: P): { readonly count: number; restore(): void } {
  const generate = pipeline.generate;
  let count = 0;
  pipeline.generate = function (this: P, ...args: never[]) {
    count++;
    return generate.apply(this, args);
  } as P['generate'];
  return {
    get count() {
      return count;
    },
    restore: () => {
      pipeline.generate = generate;
    },
  };
}
