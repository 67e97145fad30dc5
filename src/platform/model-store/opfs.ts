// The few origin-private-file-system operations the model store needs, with the browser's failures turned into
// ModelStorageErrors that say what to do.
import { formatBytes } from '../../util/format-bytes.js';
import { ModelStorageError } from './types.js';

/** The store's folder at the root of the origin's private file system. */
const ROOT = 'blip2-webgpu-models';

interface StorageManagerLike {
  getDirectory?: () => Promise<FileSystemDirectoryHandle>;
  estimate?: () => Promise<StorageEstimate>;
  persist?: () => Promise<boolean>;
  persisted?: () => Promise<boolean>;
}

function storageManager(): StorageManagerLike | undefined {
  return (globalThis as { navigator?: { storage?: StorageManagerLike } }).navigator?.storage;
}

/** Why models cannot be stored here, or null when they can. */
export function storageUnavailableReason(): string | null {
  const g = globalThis as { isSecureContext?: boolean; FileSystemFileHandle?: { prototype: object }; crypto?: Crypto };
  if (g.isSecureContext === false) return 'the page is not a secure context (https:// or http://localhost), so the browser offers no private file system';
  if (typeof storageManager()?.getDirectory !== 'function') return 'this browser has no origin private file system (navigator.storage.getDirectory)';
  if (!g.FileSystemFileHandle || !('createWritable' in g.FileSystemFileHandle.prototype)) {
    return 'this browser cannot write files in its private file system from a page (FileSystemFileHandle.createWritable: Chrome 86+, Firefox 111+, Safari 26+)';
  }
  if (typeof g.crypto?.subtle?.digest !== 'function') return 'this browser has no WebCrypto digest (crypto.subtle) to check stored files';
  return null;
}

/** The store's root folder; null when it does not exist and `create` is false. */
export async function storeRoot(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  const reason = storageUnavailableReason();
  if (reason) throw new ModelStorageError(`cannot store models: ${reason}`, 'unavailable');
  const top = await storageManager()!.getDirectory!();
  try {
    return await top.getDirectoryHandle(ROOT, { create });
  } catch (e) {
    if (!create && (e as DOMException).name === 'NotFoundError') return null;
    throw e;
  }
}

export async function subdirectory(parent: FileSystemDirectoryHandle, name: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  try {
    return await parent.getDirectoryHandle(name, { create });
  } catch (e) {
    if (!create && (e as DOMException).name === 'NotFoundError') return null;
    throw e;
  }
}

/** Names in a folder (the DOM typings of this TypeScript version lack the async iterators). */
export async function entryNames(dir: FileSystemDirectoryHandle): Promise<{ name: string; kind: 'file' | 'directory' }[]> {
  const out: { name: string; kind: 'file' | 'directory' }[] = [];
  const iterable = dir as unknown as { values(): AsyncIterable<FileSystemHandle> };
  for await (const h of iterable.values()) out.push({ name: h.name, kind: h.kind });
  return out;
}

/** A stored file as a `File` snapshot, or null when it does not exist. */
export async function fileOf(dir: FileSystemDirectoryHandle, name: string): Promise<File | null> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch (e) {
    if ((e as DOMException).name === 'NotFoundError' || (e as DOMException).name === 'TypeMismatchError') return null;
    throw e;
  }
}

/** Writes a whole file; the browser commits it atomically when the stream closes (a crash leaves the old file). */
export async function writeFile(dir: FileSystemDirectoryHandle, name: string, data: Uint8Array | string): Promise<void> {
  let writable: FileSystemWritableFileStream | null = null;
  try {
    writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
    await writable.write(typeof data === 'string' ? data : (data as Uint8Array<ArrayBuffer>));
    await writable.close();
    writable = null;
  } catch (e) {
    await writable?.abort().catch(() => {});
    if ((e as DOMException).name === 'QuotaExceededError') {
      const { usage, quota } = await estimate();
      throw new ModelStorageError(
        `the browser refused to store more (quota exceeded: ${formatBytes(usage)} of ${formatBytes(quota)} used by this site). ` +
          `Delete stored models (deleteStoredModel, or the demo's list) or load with cache: false to read the model over the network without storing it.`,
        'quota',
        { cause: e },
      );
    }
    throw e;
  }
}

export async function removeEntry(dir: FileSystemDirectoryHandle, name: string, recursive = false): Promise<boolean> {
  try {
    await dir.removeEntry(name, { recursive });
    return true;
  } catch (e) {
    if ((e as DOMException).name === 'NotFoundError') return false;
    throw e;
  }
}

export async function estimate(): Promise<{ usage: number; quota: number }> {
  const e = (await storageManager()?.estimate?.()) ?? {};
  return { usage: e.usage ?? 0, quota: e.quota ?? Infinity };
}

let persistAsked = false;

/** Asks once per page that the origin's storage not be evicted under storage pressure (the browser may decline). */
export async function requestPersistence(): Promise<void> {
  if (persistAsked) return;
  persistAsked = true;
  const sm = storageManager();
  try {
    if (sm?.persisted && !(await sm.persisted())) await sm.persist?.();
  } catch {
    // Best effort: without it the browser may evict the store when the disk fills, and models are downloaded again.
  }
}

export async function persisted(): Promise<boolean> {
  try {
    return (await storageManager()?.persisted?.()) ?? false;
  } catch {
    return false;
  }
}

export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

const localLocks = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` holding the named lock: across tabs of the origin (Web Locks), so two tabs never download or rewrite
 * the same file at once; within the page where Web Locks are missing.
 */
export async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (locks) return locks.request(`blip2-webgpu:${name}`, fn) as Promise<T>;
  const previous = localLocks.get(name) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => {});
  localLocks.set(name, tail);
  try {
    return await run;
  } finally {
    if (localLocks.get(name) === tail) localLocks.delete(name);
  }
}
