import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readFile, readlink, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { downloadModel, resolveModel, type DownloadProgress } from '../../src/io/hub.js';
import { downloadToBlob } from '../../src/io/hub-transfer.js';
import { TINY } from '../paths.js';
import { repoFromFolder, startMockHub, type MockHub, type MockRepo } from '../support/mock-hub.js';

const REPO = 'test-org/tiny-blip2';
const tiny: MockRepo = repoFromFolder(REPO, TINY, 'a'.repeat(40));
const NEEDED = ['config.json', 'generation_config.json', 'model.safetensors', 'preprocessor_config.json', 'processor_config.json', 'tokenizer.json', 'tokenizer_config.json'];

const sharded: MockRepo = (() => {
  const shard = (n: number) => new Uint8Array(5000).map((_, i) => (i * 7 + n) & 0xff);
  const files = new Map<string, Uint8Array>([
    ['config.json', new TextEncoder().encode('{"model_type":"blip-2"}')],
    ['preprocessor_config.json', new TextEncoder().encode('{}')],
    ['tokenizer.json', new TextEncoder().encode('{}')],
    ['README.md', new TextEncoder().encode('# card')],
    ['model.safetensors.index.json', new TextEncoder().encode(JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }))],
    ['model-00001-of-00002.safetensors', shard(1)],
    ['model-00002-of-00002.safetensors', shard(2)],
    ['pytorch_model.bin', shard(3)],
    ['pytorch_model.bin.index.json', new TextEncoder().encode('{}')],
  ]);
  return { id: 'test-org/sharded', commit: 'b'.repeat(40), files };
})();

let hub: MockHub;
let cache: string;
const env = () => ({ HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache }) as Record<string, string>;

beforeAll(async () => {
  hub = await startMockHub({ repos: [tiny, sharded] });
});
afterAll(async () => {
  await hub.close();
});

async function freshCache(): Promise<void> {
  cache = await mkdtemp(join(tmpdir(), 'blip2-hub-'));
}
afterEach(async () => {
  await rm(cache, { recursive: true, force: true });
});

describe('hub download into the HF cache layout', () => {
  it('downloads only what BLIP-2 needs, into blobs/refs/snapshots', async () => {
    await freshCache();
    const progress: DownloadProgress[] = [];
    const r = await downloadModel(REPO, { env: env(), onProgress: (p) => progress.push(p) });
    const repoDir = join(cache, 'models--test-org--tiny-blip2');
    expect(r.source).toBe('download');
    expect(r.commit).toBe(tiny.commit);
    expect(r.dir).toBe(join(repoDir, 'snapshots', tiny.commit));
    expect((await readFile(join(repoDir, 'refs', 'main'), 'utf8')).trim()).toBe(tiny.commit);
    expect((await readdir(r.dir)).sort()).toEqual(NEEDED);
    expect([...r.downloaded].sort()).toEqual(NEEDED);
    for (const f of NEEDED) {
      const link = join(r.dir, f);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      expect(await readlink(link)).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/);
      expect(new Uint8Array(await readFile(link))).toEqual(tiny.files.get(f));
    }
    const weights = tiny.files.get('model.safetensors')!;
    const sha = createHash('sha256').update(weights).digest('hex');
    expect((await stat(join(repoDir, 'blobs', sha))).size).toBe(weights.length);
    expect(hub.requests.some((q) => q.path.includes('expected.safetensors') || q.path.endsWith('.png'))).toBe(false);
    const last = progress.at(-1)!;
    expect(last.bytes).toBe(last.totalBytes);
    expect(last.totalBytes).toBe(NEEDED.reduce((n, f) => n + tiny.files.get(f)!.length, 0));
  });

  it('uses a complete cached snapshot without any request', async () => {
    await freshCache();
    await downloadModel(REPO, { env: env() });
    const before = hub.requests.length;
    const again = await downloadModel(REPO, { env: env() });
    expect(again.source).toBe('cache');
    expect(again.downloaded).toEqual([]);
    const viaResolve = await resolveModel(REPO, { env: env() });
    expect(viaResolve.dir).toBe(again.dir);
    expect(hub.requests.length).toBe(before);
  });

  it('works offline from the cache and fails clearly when the model is missing', async () => {
    await freshCache();
    const before = hub.requests.length;
    await expect(downloadModel(REPO, { env: { ...env(), HF_HUB_OFFLINE: '1' } })).rejects.toThrow(/not in the cache.*offline/);
    expect(hub.requests.length).toBe(before);
    await downloadModel(REPO, { env: env() });
    const n = hub.requests.length;
    const r = await downloadModel(REPO, { env: { ...env(), HF_HUB_OFFLINE: 'true' }, refresh: true });
    expect(r.source).toBe('cache');
    expect(hub.requests.length).toBe(n);
  });

  it('refetches a snapshot file whose blob was deleted, and no other', async () => {
    await freshCache();
    const first = await downloadModel(REPO, { env: env() });
    const blob = join(first.dir, await readlink(join(first.dir, 'tokenizer.json')));
    await rm(blob);
    const again = await downloadModel(REPO, { env: env() });
    expect(again.downloaded).toEqual(['tokenizer.json']);
    expect(new Uint8Array(await readFile(join(again.dir, 'tokenizer.json')))).toEqual(tiny.files.get('tokenizer.json'));
  });

  it('resumes a cut transfer with a Range request, in the next run and within one run', async () => {
    await freshCache();
    const weights = tiny.files.get('model.safetensors')!;
    hub.cutTransfer('model.safetensors', 100_000);
    await expect(downloadModel(REPO, { env: env(), retries: 0 })).rejects.toThrow(/run again to resume/);
    const sha = createHash('sha256').update(weights).digest('hex');
    const partial = join(cache, 'models--test-org--tiny-blip2', 'blobs', `${sha}.incomplete`);
    expect((await stat(partial)).size).toBe(100_000);
    const mark = hub.requests.length;
    const r = await downloadModel(REPO, { env: env(), retries: 0 });
    const cdn = hub.requests.slice(mark).filter((q) => q.server === 'cdn' && q.path.endsWith(sha));
    expect(cdn.map((q) => q.range)).toContain('bytes=100000-');
    expect(new Uint8Array(await readFile(join(r.dir, 'model.safetensors')))).toEqual(weights);

    await rm(cache, { recursive: true, force: true });
    await freshCache();
    hub.cutTransfer('model.safetensors', 50_000, 2);
    const mark2 = hub.requests.length;
    const r2 = await downloadModel(REPO, { env: env() });
    expect(new Uint8Array(await readFile(join(r2.dir, 'model.safetensors')))).toEqual(weights);
    const ranges = hub.requests.slice(mark2).filter((q) => q.server === 'cdn' && q.path.endsWith(sha)).map((q) => q.range);
    expect(ranges).toEqual([undefined, 'bytes=50000-', 'bytes=100000-']);
  });

  it('downloads the safetensors index and its shards, not PyTorch files or the card', async () => {
    await freshCache();
    const r = await downloadModel('test-org/sharded', { env: env() });
    expect((await readdir(r.dir)).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'preprocessor_config.json',
      'tokenizer.json',
    ]);
  });

  it('explains unknown repos and refused tokens', async () => {
    await freshCache();
    await expect(downloadModel('test-org/nope', { env: env() })).rejects.toThrow(/was not found/);
    await expect(downloadModel('../etc', { env: env() })).rejects.toThrow(/not a hub repo id/);
    await expect(resolveModel('./no/such/folder', { env: env() })).rejects.toThrow(/no model folder/);
    await expect(downloadModel(REPO, { env: { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_CACHE: cache } })).rejects.toThrow(/cannot reach the hub/);
  });

  it('rejects content whose hash differs from the hub listing', async () => {
    await freshCache();
    const dest = join(cache, 'blob');
    const weights = tiny.files.get('model.safetensors')!;
    await expect(
      downloadToBlob({
        url: `${hub.url}/${REPO}/resolve/main/model.safetensors`,
        dest,
        expected: { size: weights.length, hash: { algorithm: 'sha256', hex: '0'.repeat(64) } },
        retries: 0,
      }),
    ).rejects.toThrow(/does not match/);
  });
});

describe('gated repo', () => {
  it('sends the token to the hub (not to the CDN) and explains a 401', async () => {
    const gated = await startMockHub({ repos: [tiny], requiredToken: 'hf_secret' });
    const dir = await mkdtemp(join(tmpdir(), 'blip2-hub-'));
    try {
      const base = { HF_ENDPOINT: gated.url, HF_HUB_CACHE: dir };
      await expect(downloadModel(REPO, { env: base })).rejects.toThrow(/HF_TOKEN/);
      const r = await downloadModel(REPO, { env: { ...base, HF_TOKEN: 'hf_secret' } });
      expect(r.source).toBe('download');
      const ok = gated.requests.filter((q) => q.authorization);
      expect(ok.length).toBeGreaterThan(3);
      expect(ok.every((q) => q.server === 'hub' && q.authorization === 'Bearer hf_secret')).toBe(true);
      expect(gated.requests.some((q) => q.server === 'cdn')).toBe(true);
    } finally {
      await gated.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('local folders', () => {
  it('resolves a complete local folder without the hub', async () => {
    await freshCache();
    const r = await resolveModel(TINY, { env: { HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_CACHE: cache } });
    expect(r).toMatchObject({ source: 'local', modelId: TINY, downloaded: [] });
  });
});
