/**
 * Soak: 1000 requests through the server (real engine, tiny checkpoint, continuous batching) leave GPU memory
 * exactly where it was after warm-up and the process's memory flat (loosely: garbage collection and allocator
 * arenas move RSS by a few MiB). `npm run bench:serve -- --soak 1000` reports the same precisely.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2 } from '../../src/pipeline.js';
import { Blip2Engine } from '../../src/server/blip2-engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { TINY } from '../paths.js';
import { imageBytesOf as caseImageBytes } from '../support/cases.js';
import { loadFixture, type FixtureCase } from '../support/fixtures.js';
import { dataUrl, imageMessage, postCompletion } from './support.js';

const tiny = loadFixture(TINY);
const tinyCases: readonly FixtureCase[] = tiny.manifest.cases;
const imageBytesOf = (c: FixtureCase) => caseImageBytes(tiny, c);

const MODEL = 'tiny-blip2';

// Collect garbage before measuring the heap (vitest's workers do not start with --expose-gc).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function memory(): { heap: number; rss: number } {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}
const REQUESTS = 1000;
const CLIENTS = 8;

describe('1000 requests in a row', () => {
  let engine: Blip2Engine;
  let server: Blip2Server;

  beforeAll(async () => {
    engine = new Blip2Engine(await Blip2.fromPretrained(TINY, { dtype: 'f32' }), MODEL);
    server = await Blip2Server.start(engine, { port: 0, maxBatch: CLIENTS });
  });

  afterAll(async () => {
    await server?.close();
    await engine?.dispose();
  });

  // Small images (64x64 crops of the fixture's), so that the test spends its time in the server, not in decoding.
  let images: string[] = [];
  beforeAll(async () => {
    images = await Promise.all(tinyCases.slice(0, 4).map(async (c) => dataUrl(new Uint8Array(await sharp(imageBytesOf(c)).resize(64, 64).png().toBuffer()))));
  });
  // Captions and questions, 1-4 new tokens, every fourth streamed, every fifth sampled with a seed.
  const body = (i: number) => ({
    model: MODEL,
    messages: [imageMessage(images[i % images.length]!, i % 3 ? `what is in picture ${i % 7}?` : undefined)],
    max_tokens: 1 + (i % 4),
    ...(i % 4 === 0 ? { stream: true } : {}),
    ...(i % 5 === 0 ? { temperature: 1, seed: i } : {}),
  });

  async function run(count: number, offset: number): Promise<void> {
    let next = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < count) {
          const r = await postCompletion(server.url, body(offset + next++));
          if (r.status !== 200) failures.push(r.text);
        }
      }),
    );
    expect(failures).toEqual([]);
  }

  it('leaves GPU live bytes unchanged and process memory flat', { timeout: 300_000 }, async () => {
    await run(100, 0); // warm-up: pipelines, buffer pools, the slot cache at its largest
    const gpuBefore = engine.memory();
    // Native caches fill during the first few hundred requests (Dawn's bind groups: an LRU of 8192, about 5 KiB
    // each on lavapipe, keyed by buffers and uniform offsets, which vary as the batch changes) and then stay.
    await run(REQUESTS / 2, 100);
    const half = memory();
    await run(REQUESTS / 2, 100 + REQUESTS / 2);
    const end = memory();
    const gpuAfter = engine.memory();
    expect(gpuAfter.gpuLiveBytes).toBe(gpuBefore.gpuLiveBytes);
    expect(gpuAfter.gpuPooledBytes).toBeLessThanOrEqual(2 * gpuBefore.gpuPooledBytes + 2 ** 20);
    // 500 requests: keeping 8 KiB of JavaScript objects each would be 4 MiB of heap; RSS moves by some 10 MiB
    // as allocator arenas come and go, a leaked image or tensor per request would be far more.
    expect(end.heap - half.heap).toBeLessThan(4 * 2 ** 20);
    expect(end.rss - half.rss).toBeLessThan(48 * 2 ** 20);
  });
});
