// Which URLs the browser platform serves from the model store: while a `fromPretrained` of a folder URL runs with
// storage on, every file directly in that folder is opened through its StoredFolder. The readers (config,
// tokenizer, processor, checkpoint) stay unaware of it: they open locations through the platform as before.
import type { ByteSource } from '../types.js';
import { isNode } from '../host.js';
import { storageUnavailableReason } from './opfs.js';
import { normalizeFolderUrl, StoredFolder } from './store.js';
import { ModelStorageError, type ModelStorageOptions } from './types.js';

interface Scope {
  folder: StoredFolder;
  /** Nested and concurrent loads of the same folder share one scope; it ends with the last of them. */
  refs: number;
}

/** Active scopes by folder URL + '/'. */
const scopes = new Map<string, Scope>();

let warnedUnavailable = false;

/**
 * Runs `load` with the files of folder `dir` served from the browser's model store (downloaded into it first
 * when needed), as `options.cache` asks. Node, `cache: false`, non-HTTP locations (dropped files) and browsers
 * without storage (unless `cache` is set explicitly: then that is an error) run `load` unchanged.
 */
export async function withModelStorage<T>(dir: string | URL, options: ModelStorageOptions, load: () => Promise<T>): Promise<T> {
  const setting = options.cache;
  if (setting === false || isNode()) return load();
  let url: string;
  try {
    url = normalizeFolderUrl(dir);
  } catch {
    return load();
  }
  if (!/^https?:/.test(url)) return load();
  const reason = storageUnavailableReason();
  if (reason) {
    if (setting !== undefined) throw new ModelStorageError(`cannot keep ${url} in this browser: ${reason}. Load with cache: false.`, 'unavailable');
    if (!warnedUnavailable) console.warn(`blip2-webgpu: models are read over the network on every load: ${reason}`);
    warnedUnavailable = true;
    return load();
  }
  const prefix = `${url}/`;
  let scope = scopes.get(prefix);
  if (!scope) {
    const o = typeof setting === 'object' ? setting : {};
    scope = { folder: new StoredFolder(url, { revalidate: o.revalidate ?? false, verify: o.verify ?? true }, options.onDownload), refs: 0 };
    scopes.set(prefix, scope);
  }
  scope.refs++;
  try {
    return await load();
  } finally {
    if (--scope.refs === 0) scopes.delete(prefix);
  }
}

/** The stored file behind `location` while a load of its folder is in progress, or null. */
export function storedFolderFor(location: string | URL | Blob): { open(): Promise<ByteSource> } | null {
  if (scopes.size === 0 || (typeof Blob !== 'undefined' && location instanceof Blob)) return null;
  let href: string;
  try {
    href = new URL(String(location), (globalThis as { location?: { href: string } }).location?.href).href;
  } catch {
    return null;
  }
  for (const [prefix, scope] of scopes) {
    const name = href.startsWith(prefix) ? href.slice(prefix.length) : '';
    // Only plain files directly in the folder (HF model folders are flat).
    if (name !== '' && !/[/?#]/.test(name)) return { open: () => scope.folder.openFile(href) };
  }
  return null;
}
