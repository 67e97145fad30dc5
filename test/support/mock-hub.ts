/**
 * A local stand-in for the Hugging Face hub on 127.0.0.1, serving model repos the way the hub does for the
 * calls the download code makes: `GET /api/models/{repo}/revision/{rev}` (commit `sha`), `GET
 * /api/models/{repo}/tree/{rev}` (file list with git oids and LFS sha256), and `/{repo}/resolve/{rev}/{path}`,
 * which serves small files itself and redirects LFS files (302) to a separate CDN-like server. Both honour
 * `Range`. Responses carry `ETag`, `X-Repo-Commit`, `X-Linked-Etag` and `X-Linked-Size` like the hub's.
 * It can require a token (401 without it) and cut a transfer after a number of bytes.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface MockRepo {
  id: string;
  /** 40 hex digits. */
  commit: string;
  files: Map<string, Uint8Array>;
  /** Branches and tags -> commit; 'main' always points at `commit`. */
  refs?: Record<string, string>;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

export interface MockHub {
  url: string;
  cdnUrl: string;
  requests: RecordedRequest[];
  /** Next transfers of `path` (on either server) stop after `bytes` bytes of body, `times` times. */
  cutTransfer(path: string, bytes: number, times?: number): void;
  close(): Promise<void>;
}

export interface MockHubOptions {
  repos: MockRepo[];
  /** When set, hub requests need `Authorization: Bearer <token>` (the CDN's signed URLs do not). */
  requiredToken?: string;
}

/** Files above this size are served as LFS objects (redirected to the CDN), like weights on the hub. */
const LFS_THRESHOLD = 1024;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** A repo made of every file in a folder. */
export function repoFromFolder(id: string, dir: string, commit = 'c0ffee'.padEnd(40, '0')): MockRepo {
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir).sort()) {
    if (statSync(join(dir, name)).isFile()) files.set(name, new Uint8Array(readFileSync(join(dir, name))));
  }
  return { id, commit, files };
}

function isLfs(bytes: Uint8Array): boolean {
  return bytes.length > LFS_THRESHOLD;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startMockHub(options: MockHubOptions): Promise<MockHub> {
  const requests: RecordedRequest[] = [];
  const cuts = new Map<string, { bytes: number; times: number }>();
  const blobs = new Map<string, Uint8Array>();
  for (const repo of options.repos) for (const b of repo.files.values()) blobs.set(sha256(b), b);

  /** Sends `bytes` honouring Range; cuts the connection when a cut is armed for `key`. */
  function serveBytes(req: IncomingMessage, res: ServerResponse, bytes: Uint8Array, key: string, headers: Record<string, string>): void {
    let start = 0;
    let end = bytes.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(Number(range[2]), end);
      if (start >= bytes.length) {
        res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${bytes.length}`;
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, { 'accept-ranges': 'bytes', 'content-length': String(body.length), 'content-type': 'application/octet-stream', ...headers });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cut = cuts.get(key);
    if (cut && cut.times > 0) {
      cut.times--;
      res.write(body.subarray(0, cut.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }

  function findRepo(org: string, name: string): MockRepo | undefined {
    return options.repos.find((r) => r.id === `${org}/${name}`);
  }

  function commitOf(repo: MockRepo, rev: string): string | undefined {
    if (rev === repo.commit || rev === 'main' || rev === 'HEAD') return repo.commit;
    return repo.refs?.[rev];
  }

  function hubHandler(req: IncomingMessage, res: ServerResponse, cdnUrl: () => string): void {
    const url = new URL(req.url ?? '/', 'http://hub');
    const path = decodeURIComponent(url.pathname);
    requests.push({ server: 'hub', method: req.method ?? '', path, range: req.headers.range, authorization: req.headers.authorization });
    if (options.requiredToken && req.headers.authorization !== `Bearer ${options.requiredToken}`) {
      sendJson(res, 401, { error: 'Invalid credentials in Authorization header' }, { 'x-error-code': 'GatedRepo' });
      return;
    }
    let m = /^\/api\/models\/([^/]+)\/([^/]+)\/revision\/(.+)$/.exec(path);
    if (m) {
      const repo = findRepo(m[1]!, m[2]!);
      if (!repo) return sendJson(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      const sha = commitOf(repo, m[3]!);
      if (!sha) return sendJson(res, 404, { error: `Invalid rev id: ${m[3]}` }, { 'x-error-code': 'RevisionNotFound' });
      return sendJson(res, 200, {
        _id: `id-${repo.id}`,
        id: repo.id,
        sha,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: '2024-11-01T00:00:00.000Z',
        pipeline_tag: 'image-text-to-text',
        siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/api\/models\/([^/]+)\/([^/]+)\/tree\/([^/]+)\/?$/.exec(path);
    if (m) {
      const repo = findRepo(m[1]!, m[2]!);
      if (!repo || !commitOf(repo, m[3]!)) return sendJson(res, 404, { error: 'Not found' }, { 'x-error-code': 'RevisionNotFound' });
      return sendJson(
        res,
        200,
        [...repo.files].map(([p, b]) => ({
          type: 'file',
          oid: gitOid(b),
          size: b.length,
          path: p,
          ...(isLfs(b) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
        })),
      );
    }
    m = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m && (req.method === 'GET' || req.method === 'HEAD')) {
      const repo = findRepo(m[1]!, m[2]!);
      const sha = repo && commitOf(repo, m[3]!);
      const bytes = sha ? repo!.files.get(m[4]!) : undefined;
      if (!repo || !sha) return sendJson(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      if (!bytes) return sendJson(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
      if (isLfs(bytes)) {
        const oid = sha256(bytes);
        res.writeHead(302, {
          location: `${cdnUrl()}/repos/${oid}?X-Amz-Signature=mock`,
          etag: `"${gitOid(bytes)}"`,
          'x-repo-commit': sha,
          'x-linked-etag': `"${oid}"`,
          'x-linked-size': String(bytes.length),
        });
        res.end();
        return;
      }
      return serveBytes(req, res, bytes, m[4]!, { etag: `"${gitOid(bytes)}"`, 'x-repo-commit': sha });
    }
    sendJson(res, 404, { error: `no route ${path}` });
  }

  function cdnHandler(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://cdn');
    requests.push({ server: 'cdn', method: req.method ?? '', path: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    const oid = /^\/repos\/([0-9a-f]{64})$/.exec(url.pathname)?.[1];
    const bytes = oid ? blobs.get(oid) : undefined;
    if (!bytes || url.searchParams.get('X-Amz-Signature') !== 'mock') {
      res.writeHead(403);
      res.end('AccessDenied');
      return;
    }
    const path = [...options.repos.flatMap((r) => [...r.files])].find(([, b]) => b === bytes)?.[0] ?? oid!;
    serveBytes(req, res, bytes, path, { etag: `"${oid}"` });
  }

  const listen = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  let cdnBase = '';
  const cdn = createServer(cdnHandler);
  const hub = createServer((req, res) => hubHandler(req, res, () => cdnBase));
  cdnBase = await listen(cdn);
  const hubBase = await listen(hub);
  const stop = (server: Server) =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    url: hubBase,
    cdnUrl: cdnBase,
    requests,
    cutTransfer(path, bytes, times = 1) {
      cuts.set(path, { bytes, times });
    },
    close: async () => {
      await Promise.all([stop(hub), stop(cdn)]);
    },
  };
}
