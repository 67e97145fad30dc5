import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
};

export interface StaticServerOptions {
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
  /** Called for every request after it is answered (tests count range requests with it). */
  onRequest?: (info: { method: string; path: string; status: number; range: string | null }) => void;
  /**
   * Fault injection for tests: a number makes this response end (the connection is destroyed) after that many
   * body bytes, as a dropped connection would.
   */
  cutAfter?: (info: { method: string; path: string; range: string | null }) => number | undefined;
}

export interface StaticServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes; null when unsatisfiable or multi-range. */
export function parseRange(header: string, size: number): { start: number; end: number } | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end || start >= size) return null;
  return { start, end };
}

/**
 * Answers GET and HEAD for one file, with single HTTP ranges (what a URL byte source needs for large shards),
 * a strong ETag and Last-Modified (as nginx derives them: size and modification time), and `If-Range`.
 */
async function sendFile(req: IncomingMessage, res: ServerResponse, file: string, cutAfter: number | undefined): Promise<number> {
  const info = await stat(file);
  if (!info.isFile()) throw new Error('not a file');
  const etag = `"${Math.floor(info.mtimeMs).toString(16)}-${info.size.toString(16)}"`;
  const lastModified = info.mtime.toUTCString();
  const headers: Record<string, string | number> = {
    'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-cache',
    etag,
    'last-modified': lastModified,
  };
  const ifRange = req.headers['if-range'];
  // A range is only valid for the representation the client names; otherwise the whole (new) file is sent.
  const rangeHeader = ifRange === undefined || ifRange === etag || ifRange === lastModified ? req.headers.range : undefined;
  let start = 0;
  let end = info.size - 1;
  let status = 200;
  if (rangeHeader !== undefined) {
    const range = parseRange(rangeHeader, info.size);
    if (!range) {
      res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end();
      return 416;
    }
    ({ start, end } = range);
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
  }
  headers['content-length'] = end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || info.size === 0) {
    res.end();
    return status;
  }
  await new Promise<void>((resolve, reject) => {
    const last = cutAfter === undefined ? end : Math.min(end, start + cutAfter - 1);
    const stream = createReadStream(file, { start, end: last });
    stream.on('error', reject);
    res.on('close', () => {
      stream.destroy();
      resolve();
    });
    if (last < end) {
      // A dropped connection: the bytes sent so far, time for the client to take them, then no more.
      stream.pipe(res, { end: false });
      stream.on('end', () => setTimeout(() => res.destroy(), 250));
    } else stream.pipe(res);
  });
  return status;
}

/**
 * Serves `routes` (URL prefix -> folder) on 127.0.0.1 (GET and HEAD, single byte ranges); for browser tests
 * and the demo. The first matching prefix wins, so list longer prefixes first.
 */
export async function serveStatic(routes: Record<string, string>, options: StaticServerOptions = {}): Promise<StaticServer> {
  const server = createServer((req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      let path: string;
      try {
        path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      } catch {
        path = '';
      }
      let status = 404;
      if (method !== 'GET' && method !== 'HEAD') {
        status = 405;
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else {
        const prefix = Object.keys(routes).find((p) => path.startsWith(p));
        if (prefix === undefined) {
          res.writeHead(404).end('not found');
        } else {
          let rel = normalize(path.slice(prefix.length)).replace(/^(\.\.(\/|$))+/, '');
          if (rel === '.' || rel === '' || rel.endsWith('/')) rel = join(rel, 'index.html');
          try {
            const cut = options.cutAfter?.({ method, path, range: req.headers.range ?? null });
            status = await sendFile(req, res, join(routes[prefix]!, rel), cut);
          } catch {
            if (!res.headersSent) res.writeHead(404).end('not found');
            else res.destroy();
          }
        }
      }
      options.onRequest?.({ method, path, status, range: req.headers.range ?? null });
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('no address');
  return {
    server,
    url: `http://127.0.0.1:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
