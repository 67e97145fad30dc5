/**
 * Downloads one file of a hub repo into its cache blob: bytes go to `<blob>.incomplete`, an interrupted
 * transfer resumes with an HTTP Range request (also across runs), the content is checked against the hub's
 * hash, and only then is the file renamed into place. `@huggingface/hub`'s cache helper has no resume, no
 * progress and no verification, which is why this part is written here.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, stat, truncate, writeFile } from 'node:fs/promises';

export interface ExpectedContent {
  size: number;
  /** sha256 of the content (LFS files), or the git blob sha1 (small files). */
  hash: { algorithm: 'sha256' | 'git-sha1'; hex: string };
}

export interface TransferOptions {
  /** The hub's `resolve` URL of the file. */
  url: string;
  /** Sent to the hub's own origin only, never to the CDN it redirects to. */
  token?: string;
  dest: string;
  expected: ExpectedContent;
  /** Extra attempts after a cut connection, each resuming where the last one stopped. */
  retries: number;
  /** The file's bytes so far (including those kept from an earlier run). */
  onBytes?: (fileBytes: number) => void;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

export class HubHttpError extends Error {
  override readonly name = 'HubHttpError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

function newHasher(expected: ExpectedContent): Hash {
  const h = createHash(expected.hash.algorithm === 'sha256' ? 'sha256' : 'sha1');
  if (expected.hash.algorithm === 'git-sha1') h.update(`blob ${expected.size}\0`);
  return h;
}

async function hashPrefix(h: Hash, path: string, end: number): Promise<void> {
  if (end === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: end - 1 })) h.update(chunk as Buffer);
}

/** GET with redirects followed by hand, so the token goes to the hub's origin and nowhere else. */
async function getFollowing(opts: TransferOptions, from: number): Promise<Response> {
  const doFetch = opts.fetch ?? fetch;
  const hubOrigin = new URL(opts.url).origin;
  let url = new URL(opts.url);
  for (let hop = 0; hop <= 10; hop++) {
    const headers: Record<string, string> = {};
    if (from > 0) headers.range = `bytes=${from}-`;
    if (opts.token && url.origin === hubOrigin) headers.authorization = `Bearer ${opts.token}`;
    const res = await doFetch(url, { headers, redirect: 'manual', signal: opts.signal });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, url);
      continue;
    }
    return res;
  }
  throw new Error(`${opts.url}: too many redirects`);
}

function httpError(url: string, status: number): HubHttpError {
  const hint =
    status === 401 || status === 403
      ? ' (the repo may be gated or private: set HF_TOKEN to a token with access)'
      : status === 404
        ? ' (file not found)'
        : '';
  return new HubHttpError(`download of ${url} failed: HTTP ${status}${hint}`, status);
}

/** Streams a response body to the end of `partial`; returns the file's new size. */
async function appendBody(res: Response, partial: string, from: number, hasher: Hash, opts: TransferOptions): Promise<number> {
  if (!res.body) throw new Error(`${opts.url}: empty response`);
  const file = await open(partial, from === 0 ? 'w' : 'a');
  let size = from;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      let done = 0;
      while (done < chunk.byteLength) done += (await file.write(chunk, done, chunk.byteLength - done)).bytesWritten;
      hasher.update(chunk);
      size += chunk.byteLength;
      opts.onBytes?.(size);
    }
  } finally {
    await file.close();
  }
  return size;
}

/** Where the response's bytes start: `have` for a matching 206, 0 for a full 200. */
async function responseStart(res: Response, have: number, url: string): Promise<number> {
  if (res.status === 200) return 0;
  if (res.status === 206) {
    const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
    if (m && Number(m[1]) === have) return have;
    await res.body?.cancel();
    throw new Error(`${url}: the server answered the range request with the wrong range`);
  }
  await res.body?.cancel();
  throw httpError(url, res.status);
}

/**
 * Downloads `opts.url` to `opts.dest`, continuing from the bytes already in `<dest>.incomplete`.
 * `onBytes` gets the file's bytes so far.
 */
export async function downloadToBlob(opts: TransferOptions): Promise<void> {
  const partial = `${opts.dest}.incomplete`;
  const { size } = opts.expected;
  if (size === 0) await writeFile(partial, new Uint8Array(0));
  let have = await sizeOf(partial);
  if (have > size) have = 0;
  let hasher = newHasher(opts.expected);
  await hashPrefix(hasher, partial, have);
  opts.onBytes?.(have);
  for (let failures = 0; have < size; ) {
    try {
      const res = await getFollowing(opts, have);
      const from = await responseStart(res, have, opts.url);
      if (from !== have) hasher = newHasher(opts.expected);
      have = await appendBody(res, partial, from, hasher, opts);
      if (have < size) throw new Error(`${opts.url}: the connection ended after ${have} of ${size} bytes`);
    } catch (e) {
      opts.signal?.throwIfAborted();
      const kept = await sizeOf(partial);
      if (e instanceof HubHttpError || ++failures > opts.retries) {
        const hint = kept > 0 && kept < size ? ` (${kept} bytes kept in ${partial}; run again to resume)` : '';
        throw new Error(`${(e as Error).message}${hint}`, { cause: e });
      }
      // Resume from what is on disk; the hash is rebuilt from it, so it cannot drift from the file.
      have = kept > size ? 0 : kept;
      hasher = newHasher(opts.expected);
      await hashPrefix(hasher, partial, have);
    }
  }
  if (have > size) {
    await truncate(partial, 0);
    throw new Error(`${opts.url}: got ${have} bytes, expected ${size}; the partial file was discarded`);
  }
  const digest = hasher.digest('hex');
  if (digest !== opts.expected.hash.hex) {
    await truncate(partial, 0);
    throw new Error(`${opts.url}: content hash ${digest} does not match the hub's ${opts.expected.hash.hex}; the partial file was discarded`);
  }
  await rename(partial, opts.dest);
}
