// Downloads one file of a model folder into the store: one GET streamed into parts of `partBytes`, each part
// checksummed (xxHash64) and committed whole before the manifest names it. An interrupted download keeps its committed
// parts and resumes with `Range` + `If-Range`, so a changed remote file restarts from zero instead of being
// spliced onto the old one's bytes.
import { formatBytes } from '../../util/format-bytes.js';
import { resumeValidator, storedBytesOf, type FileRecord } from './manifest.js';
import { partChecksum } from './checksum.js';
import { entryNames, estimate, removeEntry, requestPersistence, writeFile } from './opfs.js';
import { ModelStorageError } from './types.js';

/** Attempts per file: the first request and up to two resumes after a dropped connection. */
const MAX_ATTEMPTS = 3;

export interface DownloadTarget {
  /** The file's URL. */
  url: string;
  /** Its name in the folder (for messages and progress). */
  name: string;
  /** The model's folder in the store. */
  dir: FileSystemDirectoryHandle;
  /** Size of new parts. */
  partBytes: number;
  /** Saves the record in the manifest (called after every committed part). */
  save(record: FileRecord): Promise<void>;
  /** Remembers that the server has no such file. */
  saveMissing(): Promise<void>;
  onProgress?: (loadedBytes: number, totalBytes: number | null) => void;
  /**
   * Bytes the model's weight files still need in all, this one included (the index's total_size less what is
   * stored): a sharded model that cannot fit is refused before its first shard, not after gigabytes.
   */
  weightsNeed?: number;
}

/** The name of part `index` of `file`: encodeURIComponent never emits ',', so no file's parts match another's prefix. */
export function partName(file: string, index: number): string {
  return `${encodeURIComponent(file)},${index}`;
}

/** Deletes every stored part of `file` (also one written but not yet named by the manifest). */
export async function removeParts(dir: FileSystemDirectoryHandle, file: string): Promise<void> {
  const prefix = `${encodeURIComponent(file)},`;
  for (const e of await entryNames(dir)) if (e.kind === 'file' && e.name.startsWith(prefix)) await removeEntry(dir, e.name);
}

/** Whether a stored prefix of the file can be continued: the size is known, a validator exists, all parts are full. */
function resumable(r: FileRecord): boolean {
  return !r.complete && r.size !== null && resumeValidator(r) !== null && r.parts.every((p) => p.bytes === r.partBytes);
}

/**
 * Downloads `t.url` into the store, resuming `previous` where that is safe, and returns the complete record.
 * A 404 is remembered (optional files of HF folders are probed) and thrown as `HTTP 404`.
 */
export async function downloadFile(t: DownloadTarget, previous: FileRecord | null): Promise<FileRecord> {
  // What the index says the weights need is known before any request: a model that cannot fit asks for nothing.
  if (t.weightsNeed !== undefined) await checkQuota(t, null, null);
  let record = previous;
  let lastError: unknown = null;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    if (record && !resumable(record)) record = null;
    const resumeAt = record ? storedBytesOf(record) : 0;
    let res: Response;
    try {
      res = await fetch(t.url, {
        cache: 'no-store', // the store is the copy: the HTTP cache must not keep a second one
        headers: record ? { Range: `bytes=${resumeAt}-`, 'If-Range': resumeValidator(record)! } : {},
      });
    } catch (e) {
      lastError = e;
      continue;
    }
    if (res.status === 404) {
      await res.body?.cancel().catch(() => {});
      await t.saveMissing();
      throw new Error(`${t.url}: HTTP 404`);
    }
    if (res.status === 206 && record) {
      const range = parseContentRange(res.headers.get('content-range'));
      if (!range || range.start !== resumeAt || range.total !== record.size) {
        // Not the continuation asked for: start again from the first byte.
        await res.body?.cancel().catch(() => {});
        record = null;
        attempt--;
        continue;
      }
      await checkQuota(t, record.size! - resumeAt, res);
    } else if (res.status === 200) {
      // A fresh download, a file that changed since the stored prefix (If-Range failed), or a server without
      // ranges: in every case the body is the whole current file.
      const fresh = newRecord(res, t.partBytes);
      await checkQuota(t, fresh.size, res);
      await removeParts(t.dir, t.name);
      record = fresh;
      await t.save(record);
    } else {
      await res.body?.cancel().catch(() => {});
      throw new Error(`${t.url}: HTTP ${res.status}`);
    }
    if (!res.body) throw new Error(`${t.url}: HTTP ${res.status} without a body`);
    await requestPersistence();
    try {
      await streamParts(t, res.body, record);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // storage and quota errors: retrying does not help
      lastError = e;
      continue;
    }
    const stored = storedBytesOf(record);
    if (record.size !== null && stored !== record.size) {
      lastError = new TypeError(`the response ended after ${stored} of ${record.size} bytes`);
      continue;
    }
    record.size = stored;
    record.complete = true;
    await t.save(record);
    return record;
  }
  const stored = record ? storedBytesOf(record) : 0;
  const size = record?.size ?? null;
  throw new ModelStorageError(
    `${t.url}: download interrupted ${MAX_ATTEMPTS} times (${(lastError as Error)?.message ?? lastError})` +
      (record && resumable(record)
        ? `; ${formatBytes(stored)} of ${size === null ? '?' : formatBytes(size)} are stored and the next load resumes from there`
        : ''),
    'interrupted',
    { cause: lastError },
  );
}

function newRecord(res: Response, partBytes: number): FileRecord {
  const encoding = res.headers.get('content-encoding');
  const length = res.headers.get('content-length');
  // A compressed body's Content-Length counts the compressed bytes, not the file's.
  const size = (encoding === null || encoding === 'identity') && length !== null && /^\d+$/.test(length) ? Number(length) : null;
  return {
    kind: 'file',
    size,
    etag: res.headers.get('etag'),
    lastModified: res.headers.get('last-modified'),
    partBytes,
    parts: [],
    complete: false,
    storedAt: new Date().toISOString(),
  };
}

function parseContentRange(header: string | null): { start: number; total: number } | null {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim()) : null;
  return m ? { start: Number(m[1]), total: Number(m[3]) } : null;
}

/**
 * Refuses, before writing, a file that cannot fit in what the browser lets this origin store, together with the
 * rest of the model's weights when the folder's index says how large they are (`t.weightsNeed`).
 */
async function checkQuota(t: DownloadTarget, fileNeeds: number | null, res: Response | null): Promise<void> {
  const weights = t.weightsNeed ?? 0;
  const need = Math.max(fileNeeds ?? 0, weights);
  const { usage, quota } = await estimate();
  if (need <= quota - usage) return;
  await res?.body?.cancel().catch(() => {});
  const what = weights > (fileNeeds ?? 0) ? `the model's weight files (total_size in its index) need` : 'it needs';
  throw new ModelStorageError(
    `cannot store ${t.url}: ${what} ${formatBytes(need)} but the browser lets this site store only ${formatBytes(Math.max(0, quota - usage))} more ` +
      `(${formatBytes(usage)} of ${formatBytes(quota)} used). Delete stored models (deleteStoredModel, or the demo's list), free disk space, ` +
      `or load with cache: false to read the model over the network without storing it.`,
    'quota',
  );
}

/** Streams the body into parts; each full part is hashed, written and named in the manifest before the next. */
async function streamParts(t: DownloadTarget, body: ReadableStream<Uint8Array>, record: FileRecord): Promise<void> {
  const reader = body.getReader();
  const part = new Uint8Array(record.partBytes);
  let fill = 0;
  let loaded = storedBytesOf(record);
  const commit = async (bytes: Uint8Array) => {
    const xxh64 = await partChecksum(bytes);
    await writeFile(t.dir, partName(t.name, record.parts.length), bytes);
    record.parts.push({ bytes: bytes.length, xxh64 });
    await t.save(record);
  };
  try {
    t.onProgress?.(loaded, record.size);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      loaded += value.length;
      if (record.size !== null && loaded > record.size) {
        throw new ModelStorageError(`${t.url}: the server sent more than the ${record.size} bytes it announced`, 'changed');
      }
      for (let off = 0; off < value.length; ) {
        const n = Math.min(value.length - off, part.length - fill);
        part.set(value.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === part.length) {
          await commit(part);
          fill = 0;
        }
      }
      t.onProgress?.(loaded, record.size);
    }
    if (fill > 0) await commit(part.subarray(0, fill));
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
}
