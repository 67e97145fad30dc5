// The browser model store: every file of a model folder fetched by URL is kept in the origin private file system
// (OPFS) as parts and read from there, so a second visit reads nothing over the network.
//
// Why OPFS and not the Cache API: loading reads multi-GB shards at random offsets, and a download of one can be
// interrupted. OPFS parts are written and committed one at a time, so a download resumes after the last whole
// part, and a damaged part is fetched again alone; any slice reads straight from disk (File.slice). The Cache API
// stores whole 200 responses only (a 206 is refused), so a multi-GB download could neither resume nor be
// repaired in part. Reading speed was measured alike (docs/browser.md, bench/browser-storage.ts).
import type { ByteSource } from '../types.js';
import { downloadFile, partName, removeParts } from './download.js';
import { emptyManifest, parseManifest, resumeValidator, storedBytesOf, type FileRecord, type Manifest } from './manifest.js';
import { StoredFileSource, type StoredPart } from './stored-source.js';
import { partChecksum } from './checksum.js';
import { entryNames, estimate, fileOf, persisted, removeEntry, sha256Hex, storageUnavailableReason, storeRoot, subdirectory, withLock, writeFile } from './opfs.js';
import { ModelStorageError, type DownloadProgress, type ModelCacheOptions, type ModelStorageInfo, type StoredModel } from './types.js';

const MANIFEST = 'manifest.json';
/** HF's index of a sharded checkpoint: its metadata.total_size tells how much the weight files need. */
const INDEX = 'model.safetensors.index.json';

/** 32 MiB parts: small enough to hash and write in one piece, few enough (160 for a 5 GB shard) to list quickly. */
let partBytes = 32 * 1024 * 1024;

/** Changes the size of newly stored parts (tests use small parts to exercise multi-part files on tiny models). */
export function setStorePartBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new RangeError(`part size must be a positive integer (got ${bytes})`);
  partBytes = bytes;
}

/** Parts whose checksum this page has checked, by model, file, part, hash and the part file's modification time. */
const verifiedParts = new Set<string>();

/** The store's folder name for a model URL (a hash: URLs hold characters file names may not). */
async function folderKey(url: string): Promise<string> {
  return (await sha256Hex(new TextEncoder().encode(url))).slice(0, 32);
}

/** One model folder's files in the store, as `fromPretrained` reads them. */
export class StoredFolder {
  private dirPromise: Promise<FileSystemDirectoryHandle> | null = null;
  private keyPromise: Promise<string> | null = null;
  private readonly revalidated = new Set<string>();
  private touched = false;

  constructor(
    /** Absolute folder URL without a trailing slash. */
    readonly url: string,
    private readonly options: Required<ModelCacheOptions>,
    private readonly onDownload?: (p: DownloadProgress) => void,
  ) {}

  private key(): Promise<string> {
    return (this.keyPromise ??= folderKey(this.url));
  }

  private dir(): Promise<FileSystemDirectoryHandle> {
    return (this.dirPromise ??= (async () => (await subdirectory((await storeRoot(true))!, await this.key(), true))!)());
  }

  /** Reads the manifest; callers hold the model's lock (a write replaces the file, and a snapshot read mid-way fails). */
  private async readManifestLocked(): Promise<Manifest | null> {
    const file = await fileOf(await this.dir(), MANIFEST);
    return file ? parseManifest(await file.text(), this.url) : null;
  }

  private async readManifest(): Promise<Manifest | null> {
    return withLock(await this.key(), () => this.readManifestLocked());
  }

  /** Read-modify-write of the manifest under the model's lock (other files of the folder may be stored meanwhile). */
  private async updateManifest(change: (m: Manifest) => void): Promise<void> {
    await withLock(await this.key(), async () => {
      const now = new Date().toISOString();
      const m = (await this.readManifestLocked()) ?? emptyManifest(this.url, now);
      change(m);
      await writeFile(await this.dir(), MANIFEST, JSON.stringify(m));
    });
  }

  /** A byte source for `href` (a file directly in this folder): the stored copy, downloaded first when needed. */
  async openFile(href: string): Promise<ByteSource> {
    const name = decodeURIComponent(href.slice(this.url.length + 1));
    const key = await this.key();
    return withLock(`${key}/${name}`, async () => {
      for (let round = 0; round < 2; round++) {
        let record = (await this.readManifest())?.files[name] ?? null;
        if (record?.kind === 'missing') {
          if (!this.options.revalidate) {
            throw new Error(`${href}: HTTP 404 (remembered by the browser's model store since ${record.checkedAt}; load with cache: { revalidate: true } to ask again)`);
          }
          record = null;
        }
        if (record?.complete && this.options.revalidate && !this.revalidated.has(name)) {
          this.revalidated.add(name);
          if (await this.changedOnServer(href, name, record)) record = null;
        }
        if (!record?.complete) record = await this.download(href, name, record);
        const source = await this.storedSource(href, name, record);
        if (source) {
          await this.touch();
          return source;
        }
      }
      throw new ModelStorageError(`${href}: the stored copy failed its check right after it was downloaded; the browser's storage may be failing`, 'corrupt');
    });
  }

  private async download(href: string, name: string, previous: FileRecord | null): Promise<FileRecord> {
    const dir = await this.dir();
    return downloadFile(
      {
        url: href,
        name,
        dir,
        partBytes,
        weightsNeed: await this.weightsNeed(name),
        save: (r) => this.updateManifest((m) => void (m.files[name] = r)),
        saveMissing: () => this.updateManifest((m) => void (m.files[name] = { kind: 'missing', checkedAt: new Date().toISOString() })),
        onProgress: this.onDownload && ((loadedBytes, totalBytes) => this.onDownload!({ url: href, file: name, loadedBytes, totalBytes })),
      },
      previous,
    );
  }

  /** For a shard of a stored index: the index's total_size less the shard bytes stored (else undefined). */
  private async weightsNeed(name: string): Promise<number | undefined> {
    if (!name.endsWith('.safetensors')) return undefined;
    const m = await this.readManifest();
    const index = m?.files[INDEX];
    if (!m || index?.kind !== 'file' || !index.complete) return undefined;
    let json: { metadata?: { total_size?: unknown }; weight_map?: Record<string, unknown> };
    try {
      const dir = await this.dir();
      const parts = await Promise.all(index.parts.map((_, i) => fileOf(dir, partName(INDEX, i))));
      if (parts.some((p) => p === null)) return undefined;
      json = JSON.parse(await new Blob(parts as File[]).text());
    } catch {
      return undefined; // a damaged index is reported when the checkpoint reader opens it
    }
    const total = json.metadata?.total_size;
    const shards = new Set(Object.values(json.weight_map ?? {}));
    if (!Number.isSafeInteger(total) || !shards.has(name)) return undefined;
    let stored = 0;
    for (const shard of shards) {
      const r = typeof shard === 'string' ? m.files[shard] : undefined;
      if (r?.kind === 'file') stored += storedBytesOf(r);
    }
    return Math.max(0, (total as number) - stored);
  }

  /** One HEAD: whether the server's file differs from the stored one (size, ETag or Last-Modified). */
  private async changedOnServer(href: string, name: string, r: FileRecord): Promise<boolean> {
    const head = await fetch(href, { method: 'HEAD', cache: 'no-store' });
    if (head.status === 404) {
      await this.updateManifest((m) => void (m.files[name] = { kind: 'missing', checkedAt: new Date().toISOString() }));
      await removeParts(await this.dir(), name);
      throw new Error(`${href}: HTTP 404`);
    }
    if (!head.ok) throw new Error(`${href}: HTTP ${head.status} (revalidating the stored copy)`);
    const length = head.headers.get('content-length');
    const encoded = (head.headers.get('content-encoding') ?? 'identity') !== 'identity';
    if (!encoded && length !== null && Number(length) !== r.size) return true;
    const etag = head.headers.get('etag');
    if (etag !== null && r.etag !== null) return etag !== r.etag;
    const lastModified = head.headers.get('last-modified');
    if (lastModified !== null && r.lastModified !== null) return lastModified !== r.lastModified;
    return false; // no validator on either side: only a size change can be seen
  }

  /**
   * The stored file as a source over its parts, after checking that every part is there with its size; a part
   * that is not is fetched again on its own. With `verify`, each part's checksum is checked when it is first read
   * (StoredFileSource), and a part that fails is fetched again the same way before its bytes are used. Null when
   * the server's file is no longer the stored one: the record is then dropped and the caller downloads the file.
   */
  private async storedSource(href: string, name: string, record: FileRecord): Promise<ByteSource | null> {
    const dir = await this.dir();
    const key = await this.key();
    const memo = (i: number, file: File) => `${key}/${name}/${i}/${record.parts[i]!.xxh64}/${file.lastModified}/${file.size}`;
    const parts: StoredPart[] = [];
    let start = 0;
    for (let i = 0; i < record.parts.length; i++) {
      const expected = record.parts[i]!;
      let file = await fileOf(dir, partName(name, i));
      if (file === null || file.size !== expected.bytes) {
        console.warn(`${href}: stored part ${i} is damaged (${file === null ? 'missing' : `${file.size} bytes instead of ${expected.bytes}`}); fetching that part again`);
        const repaired = await this.repairPart(href, name, record, i);
        if (!repaired) return null;
        file = repaired.file;
        verifiedParts.add(memo(i, file));
      }
      parts.push({ file, start, bytes: expected.bytes, checked: !this.options.verify || verifiedParts.has(memo(i, file)) });
      start += expected.bytes;
    }
    if (record.size !== null && start !== record.size) {
      await this.forget(name);
      return null;
    }
    return new StoredFileSource(href, parts, record.partBytes, async (i, bytes) => {
      if ((await partChecksum(bytes)) === record.parts[i]!.xxh64) {
        verifiedParts.add(memo(i, parts[i]!.file));
        return { bytes, file: parts[i]!.file };
      }
      console.warn(`${href}: stored part ${i} is damaged (its checksum differs from the one recorded at download); fetching that part again`);
      const repaired = await withLock(`${key}/${name}`, () => this.repairPart(href, name, record, i));
      if (!repaired) {
        throw new ModelStorageError(
          `${href}: stored part ${i} is damaged and the server's file is no longer the one stored; the stored copy is discarded, load again to download the current file`,
          'changed',
        );
      }
      verifiedParts.add(memo(i, repaired.file));
      return repaired;
    });
  }

  /**
   * Fetches part `i` of a stored file again (one range request, If-Range on the stored validator) and stores it if
   * its checksum is the recorded one; null (and the record dropped) when the server's file has changed since.
   */
  private async repairPart(href: string, name: string, record: FileRecord, i: number): Promise<{ bytes: Uint8Array; file: File } | null> {
    const part = record.parts[i]!;
    const start = i * record.partBytes;
    const validator = resumeValidator(record);
    const res = await fetch(href, {
      cache: 'no-store',
      headers: { Range: `bytes=${start}-${start + part.bytes - 1}`, ...(validator ? { 'If-Range': validator } : {}) },
    });
    const bytes = res.status === 206 ? new Uint8Array(await res.arrayBuffer()) : null;
    if (!bytes) await res.body?.cancel().catch(() => {});
    if (!bytes || bytes.length !== part.bytes || (await partChecksum(bytes)) !== part.xxh64) {
      await this.forget(name);
      return null;
    }
    const dir = await this.dir();
    await writeFile(dir, partName(name, i), bytes);
    return { bytes, file: (await fileOf(dir, partName(name, i)))! };
  }

  /** Drops a file's record and parts (its server copy changed): the next open downloads it whole. */
  private async forget(name: string): Promise<void> {
    await this.updateManifest((m) => void delete m.files[name]);
    await removeParts(await this.dir(), name);
  }

  /** Records the visit once per load (the demo lists when each model was last used). */
  private async touch(): Promise<void> {
    if (this.touched) return;
    this.touched = true;
    await this.updateManifest((m) => void (m.lastUsedAt = new Date().toISOString()));
  }
}

/** Absolute folder URL without trailing slashes, as the store keys models. */
export function normalizeFolderUrl(url: string | URL): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  return new URL(String(url), base).href.replace(/\/+$/, '');
}

/** Every model in this browser's store, most recently used first. */
export async function listStoredModels(): Promise<StoredModel[]> {
  if (storageUnavailableReason()) return [];
  const root = await storeRoot(false);
  if (!root) return [];
  const out: StoredModel[] = [];
  for (const entry of await entryNames(root)) {
    if (entry.kind !== 'directory') continue;
    const dir = await subdirectory(root, entry.name, false);
    // Under the model's lock: a load in progress may be rewriting the manifest.
    const m = dir && (await withLock(entry.name, async () => {
      const file = await fileOf(dir, MANIFEST);
      return file ? parseManifest(await file.text()) : null;
    }));
    if (!m) continue; // a folder whose first file is still being fetched, or an unreadable manifest
    const files = Object.entries(m.files).map(([name, r]) =>
      r.kind === 'missing'
        ? { name, size: null, storedBytes: 0, complete: false, missing: true, storedAt: r.checkedAt }
        : { name, size: r.size, storedBytes: storedBytesOf(r), complete: r.complete, missing: false, storedAt: r.storedAt },
    );
    out.push({
      url: m.url,
      name: new URL(m.url).pathname.split('/').filter(Boolean).pop() ?? m.url,
      files: files.sort((a, b) => a.name.localeCompare(b.name)),
      storedBytes: files.reduce((n, f) => n + f.storedBytes, 0),
      complete: files.every((f) => f.complete || f.missing),
      storedAt: m.storedAt,
      lastUsedAt: m.lastUsedAt,
    });
  }
  return out.sort((a, b) => b.lastUsedAt.localeCompare(a.lastUsedAt));
}

/** Deletes a stored model (its folder URL, as listed or as given to fromPretrained); false when none was stored. */
export async function deleteStoredModel(url: string | URL): Promise<boolean> {
  if (storageUnavailableReason()) return false;
  const root = await storeRoot(false);
  if (!root) return false;
  const key = await folderKey(normalizeFolderUrl(url));
  return withLock(key, () => removeEntry(root, key, true));
}

/** Whether models can be stored here, and how much the origin uses of its quota. */
export async function modelStorageInfo(): Promise<ModelStorageInfo> {
  const reason = storageUnavailableReason();
  if (reason) return { available: false, reason, usageBytes: 0, quotaBytes: 0, persisted: false };
  const { usage, quota } = await estimate();
  return { available: true, usageBytes: usage, quotaBytes: quota, persisted: await persisted() };
}
