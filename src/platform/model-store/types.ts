// The public shapes of the browser model store: options of `fromPretrained`, what the listing returns, errors.

/** How model files fetched by URL are kept in a browser's storage (Node ignores these: it has the HF cache). */
export interface ModelCacheOptions {
  /**
   * Ask the server, once per stored file (a `HEAD`), whether the file changed since it was stored, and download
   * it again when its size, ETag or Last-Modified differ. Default false: stored files are used without a request.
   */
  revalidate?: boolean;
  /**
   * Check each stored part's checksum (xxHash64, recorded when it was downloaded) the first time a page reads it; a part
   * that fails is downloaded again before anything uses it. Default true; false checks the part sizes only.
   */
  verify?: boolean;
}

/**
 * `true` (or options): keep the folder's files in the browser and read them from there; `false`: read over HTTP
 * ranges and store nothing. Unset: store when the browser can (a secure context with the origin private file
 * system), else read over HTTP.
 */
export type ModelCacheSetting = boolean | ModelCacheOptions;

export interface DownloadProgress {
  /** The file's URL. */
  url: string;
  /** Its name in the model folder. */
  file: string;
  /** Bytes of this file stored so far (resumed parts included). */
  loadedBytes: number;
  /** The file's size; null when the server does not say (a compressed response). */
  totalBytes: number | null;
}

/** Options every `fromPretrained` that reads a model folder accepts. */
export interface ModelStorageOptions {
  /** Browsers: keep the model in the origin's private file system (see ModelCacheSetting). Node ignores it. */
  cache?: ModelCacheSetting;
  /** Called as files are downloaded into storage. */
  onDownload?: (p: DownloadProgress) => void;
}

export interface StoredModelFile {
  name: string;
  /** The file's full size; null while unknown. */
  size: number | null;
  /** Bytes stored (less than `size` while the download is incomplete). */
  storedBytes: number;
  complete: boolean;
  /** The server answered 404: remembered, so that optional files are not asked for again. */
  missing: boolean;
  /** When this copy was downloaded (ISO 8601). */
  storedAt: string;
}

export interface StoredModel {
  /** The folder's URL, as given to fromPretrained (made absolute, no trailing slash). */
  url: string;
  /** Its last path segment. */
  name: string;
  files: StoredModelFile[];
  storedBytes: number;
  /** Every file ever read from it is stored whole. */
  complete: boolean;
  storedAt: string;
  lastUsedAt: string;
}

export interface ModelStorageInfo {
  /** Whether this browser can store models (secure context, origin private file system, writable streams). */
  available: boolean;
  /** Why not, when it cannot. */
  reason?: string;
  /** `navigator.storage.estimate()` for the whole origin. */
  usageBytes: number;
  quotaBytes: number;
  /** Whether the browser promised not to evict this origin's storage (`navigator.storage.persisted()`). */
  persisted: boolean;
}

export type ModelStorageErrorCode = 'unavailable' | 'quota' | 'interrupted' | 'changed' | 'corrupt';

export class ModelStorageError extends Error {
  override readonly name = 'ModelStorageError';
  constructor(
    message: string,
    readonly code: ModelStorageErrorCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
