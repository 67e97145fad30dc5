// The model store's pure parts, in Node: the manifest a page reads back (a damaged one must be ignored, not
// trusted), which stored prefix may be resumed, and that Node ignores the `cache` option entirely.
import { describe, expect, it } from 'vitest';
import { emptyManifest, parseManifest, resumeValidator, storedBytesOf, type FileRecord } from '../../src/platform/model-store/manifest.js';
import { storedFolderFor, withModelStorage } from '../../src/platform/model-store/scope.js';

const URL_ = 'https://example.org/models/blip2';
const record: FileRecord = {
  kind: 'file',
  size: 100,
  etag: '"abc"',
  lastModified: 'Wed, 03 Dec 2025 11:57:00 GMT',
  partBytes: 64,
  parts: [
    { bytes: 64, xxh64: '0123456789abcdef' },
    { bytes: 36, xxh64: 'fedcba9876543210' },
  ],
  complete: true,
  storedAt: '2025-12-03T12:00:00.000Z',
};

describe('model store manifest', () => {
  it('round-trips a manifest and sums stored bytes', () => {
    const m = emptyManifest(URL_, '2025-12-03T12:00:00.000Z');
    m.files['model.safetensors'] = record;
    m.files['added_tokens.json'] = { kind: 'missing', checkedAt: '2025-12-03T12:00:01.000Z' };
    expect(parseManifest(JSON.stringify(m), URL_)).toEqual(m);
    expect(parseManifest(JSON.stringify(m))).toEqual(m);
    expect(storedBytesOf(record)).toBe(100);
  });

  it('ignores a manifest that is not JSON, of another version, or of another URL', () => {
    const m = { ...emptyManifest(URL_, 'now'), files: { 'config.json': record } };
    expect(parseManifest('{"version":1,', URL_)).toBeNull();
    expect(parseManifest(JSON.stringify({ ...m, version: 2 }), URL_)).toBeNull();
    expect(parseManifest(JSON.stringify(m), 'https://example.org/other')).toBeNull();
    expect(parseManifest('[]', URL_)).toBeNull();
  });

  it('drops only the records that do not parse', () => {
    const bad: unknown[] = [
      { ...record, size: -1 },
      { ...record, partBytes: 0 },
      { ...record, complete: 'yes' },
      { ...record, parts: [{ bytes: 64, xxh64: 'not hex' }] },
      { ...record, parts: [{ bytes: 1.5, xxh64: '0123456789abcdef' }] },
      { kind: 'missing' },
      null,
    ];
    const files: Record<string, unknown> = { 'config.json': record };
    bad.forEach((r, i) => (files[`bad${i}`] = r));
    const parsed = parseManifest(JSON.stringify({ ...emptyManifest(URL_, 'now'), files }), URL_)!;
    expect(Object.keys(parsed.files)).toEqual(['config.json']);
  });

  it('resumes on a strong ETag, else on Last-Modified, never on a weak ETag alone', () => {
    expect(resumeValidator(record)).toBe('"abc"');
    expect(resumeValidator({ etag: 'W/"abc"', lastModified: record.lastModified })).toBe(record.lastModified);
    expect(resumeValidator({ etag: 'W/"abc"', lastModified: null })).toBeNull();
    expect(resumeValidator({ etag: null, lastModified: null })).toBeNull();
  });
});

describe('model store in Node', () => {
  it('ignores cache: Node reads folders and URLs as before, nothing is registered', async () => {
    let seen: unknown = 'not called';
    const out = await withModelStorage(URL_, { cache: true }, async () => {
      seen = storedFolderFor(`${URL_}/config.json`);
      return 42;
    });
    expect(out).toBe(42);
    expect(seen).toBeNull();
  });
});
