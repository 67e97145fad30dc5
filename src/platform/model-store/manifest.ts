// What the store knows about one model folder: its files, their validators and the checksum (xxHash64) of each
// stored part.
// Kept as manifest.json next to the parts; data is written before the manifest names it, so a crash leaves at
// worst an unnamed part (overwritten on resume), never a named part that is missing or short.

/** One stored piece of a file: parts are written whole and committed atomically (OPFS writable streams). */
export interface PartRecord {
  bytes: number;
  xxh64: string;
}

export interface FileRecord {
  kind: 'file';
  /** The file's size (Content-Length or Content-Range total); null when the server sent it compressed. */
  size: number | null;
  etag: string | null;
  lastModified: string | null;
  /** The part size this file was stored with (every part but the last has exactly this many bytes). */
  partBytes: number;
  parts: PartRecord[];
  /** Set only when every byte is stored and the total equals `size`. */
  complete: boolean;
  storedAt: string;
}

export interface MissingRecord {
  kind: 'missing';
  checkedAt: string;
}

export interface Manifest {
  version: 1;
  url: string;
  storedAt: string;
  lastUsedAt: string;
  files: Record<string, FileRecord | MissingRecord>;
}

export function emptyManifest(url: string, now: string): Manifest {
  return { version: 1, url, storedAt: now, lastUsedAt: now, files: {} };
}

export function storedBytesOf(r: FileRecord): number {
  return r.parts.reduce((n, p) => n + p.bytes, 0);
}

/** The validator that lets a partial download resume (`If-Range`): a strong ETag, else Last-Modified. */
export function resumeValidator(r: Pick<FileRecord, 'etag' | 'lastModified'>): string | null {
  if (r.etag !== null && !r.etag.startsWith('W/')) return r.etag;
  return r.lastModified;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isStringOrNull = (x: unknown): x is string | null => x === null || typeof x === 'string';

function isFileRecord(x: Record<string, unknown>): boolean {
  return (
    (x.size === null || isCount(x.size)) &&
    isStringOrNull(x.etag) &&
    isStringOrNull(x.lastModified) &&
    isCount(x.partBytes) &&
    (x.partBytes as number) > 0 &&
    typeof x.complete === 'boolean' &&
    typeof x.storedAt === 'string' &&
    Array.isArray(x.parts) &&
    x.parts.every((p) => isObject(p) && isCount(p.bytes) && typeof p.xxh64 === 'string' && /^[0-9a-f]{16}$/.test(p.xxh64))
  );
}

/**
 * The manifest in `text` (of the model at `url`, when given), or null when it is not one this version wrote (then
 * the folder's stored files are ignored and downloaded again). A record that does not parse is dropped on its own.
 */
export function parseManifest(text: string, url?: string): Manifest | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(raw) || raw.version !== 1 || typeof raw.url !== 'string' || (url !== undefined && raw.url !== url) || typeof raw.storedAt !== 'string' || typeof raw.lastUsedAt !== 'string' || !isObject(raw.files)) {
    return null;
  }
  const files: Manifest['files'] = {};
  for (const [name, r] of Object.entries(raw.files)) {
    if (!isObject(r)) continue;
    if (r.kind === 'missing' && typeof r.checkedAt === 'string') files[name] = { kind: 'missing', checkedAt: r.checkedAt };
    else if (r.kind === 'file' && isFileRecord(r)) files[name] = r as unknown as FileRecord;
  }
  return { version: 1, url: raw.url, storedAt: raw.storedAt, lastUsedAt: raw.lastUsedAt, files };
}
