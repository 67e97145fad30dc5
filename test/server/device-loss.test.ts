/**
 * A lost GPU device (forced with device.destroy(), as a driver reset would): /health says so with a 503, the
 * requests in flight and in the queue get 503 `device_lost` (a started stream an error event), new requests get
 * 503, and `blip2 serve` exits with status 75 so that a supervisor restarts it.
 */
import { describe, expect, it } from 'vitest';
import { Gpu } from '../../src/gpu/gpu.js';
import { Blip2 } from '../../src/pipeline.js';
import { Blip2Engine } from '../../src/server/blip2-engine.js';
import type { DecodeBatch } from '../../src/server/engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { EXIT_DEVICE_LOST } from '../../src/cli/commands/serve.js';
import { collect, listeningUrl, startCli } from '../cli/run.js';
import { TINY } from '../paths.js';
import { imageBytesOf as caseImageBytes } from '../support/cases.js';
import { loadFixture, type FixtureCase } from '../support/fixtures.js';
import { dataUrl, imageMessage, postCompletion, sseEvents } from './support.js';

const tiny = loadFixture(TINY);
const tinyCases: readonly FixtureCase[] = tiny.manifest.cases;
const imageBytesOf = (c: FixtureCase) => caseImageBytes(tiny, c);

const MODEL = 'tiny-blip2';
const DEVICE_LOSS_ENGINE = new URL('../support/device-loss-engine.ts', import.meta.url).pathname;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a lost GPU device', () => {
  it('is reported by /health; requests in flight, queued and new get 503 device_lost', async () => {
    const gpu = await Gpu.create(); // its own device: destroying it leaves other tests' device alone
    const engine = new Blip2Engine(await Blip2.fromPretrained(TINY, { dtype: 'f32', gpu }), MODEL);
    // Steps slowed down, so that the requests are certainly still decoding when the device goes.
    const createDecodeBatch = engine.createDecodeBatch.bind(engine);
    engine.createDecodeBatch = (slots: number): DecodeBatch => {
      const batch = createDecodeBatch(slots);
      return Object.assign(Object.create(batch) as DecodeBatch, {
        step: async () => {
          await new Promise((r) => setTimeout(r, 30));
          return batch.step();
        },
      });
    };
    const server = await Blip2Server.start(engine, { port: 0, maxBatch: 2 });
    try {
      const image = dataUrl(imageBytesOf(tinyCases[0]!));
      const body = { model: MODEL, messages: [imageMessage(image)], max_tokens: 40 };
      const health = async () => {
        const r = await fetch(`${server.url}/health`);
        return { status: r.status, body: (await r.json()) as { status: string; queued: number; running: number } };
      };
      expect((await health()).body.status).toBe('ok');
      const plain = postCompletion(server.url, body);
      const stream = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, stream: true }),
      });
      const reader = stream.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      const streamed = (async () => {
        let text = first;
        for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
        return text;
      })();
      await until('two requests decoding', async () => (await health()).body.running === 2);
      const queued = postCompletion(server.url, body);
      await until('one request queued', async () => (await health()).body.queued === 1);

      gpu.device.destroy();

      for (const r of [await plain, await queued]) {
        expect(r.status).toBe(503);
        expect(r.json().error.code).toBe('device_lost');
      }
      expect(stream.status).toBe(200);
      const events = sseEvents(await streamed) as { error?: { code: string } }[];
      expect(events.at(-2)?.error?.code).toBe('device_lost');
      expect(events.at(-1)).toBe('[DONE]');
      const after = await health();
      expect(after.status).toBe(503);
      expect(after.body.status).toBe('device_lost');
      const refused = await postCompletion(server.url, body);
      expect(refused.status).toBe(503);
      expect(refused.json().error.code).toBe('device_lost');
    } finally {
      await server.close();
      await engine.dispose();
    }
  });

  it(`makes blip2 serve exit with status ${EXIT_DEVICE_LOST} for its supervisor`, async () => {
    const child = startCli(['serve', '--model', TINY, '--dtype', 'f32', '--port', '0'], { BLIP2_ENGINE_MODULE: DEVICE_LOSS_ENGINE });
    const done = collect(child);
    const url = await listeningUrl(child);
    const body = { model: MODEL, messages: [imageMessage(dataUrl(imageBytesOf(tinyCases[0]!)))], max_tokens: 3 };
    expect((await postCompletion(url, body)).status).toBe(200);
    child.kill('SIGUSR2');
    const r = await done;
    expect(r.code).toBe(EXIT_DEVICE_LOST);
    expect(r.stderr).toMatch(/GPU device was lost/);
  });
});
