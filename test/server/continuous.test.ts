/**
 * Continuous batching in the server: requests join a running batch between decode steps and leave it when they
 * end (the fake engine, for timing); beam search and oversized requests take the whole-batch path beside it; a
 * failing decode batch costs its requests a 500 and nothing else; and with the real engine on the tiny
 * checkpoint, staggered streamed and plain requests get the answers they get alone under static batching.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2Engine } from '../../src/server/blip2-engine.js';
import { defaultGenerationParams, type DecodeBatch } from '../../src/server/engine.js';
import { FakeEngine } from '../../src/server/fake-engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { Blip2 } from '../../src/pipeline.js';
import { TINY } from '../paths.js';
import { imageBytesOf as caseImageBytes } from '../support/cases.js';
import { loadFixture, type FixtureCase } from '../support/fixtures.js';
import { CAMERA, CHELSEA, countGenerateCalls, dataUrl, imageMessage, postCompletion, sseEvents, type Posted } from './support.js';

const tiny = loadFixture(TINY);
const tinyCases: readonly FixtureCase[] = tiny.manifest.cases;
const imageBytesOf = (c: FixtureCase) => caseImageBytes(tiny, c);

const MODEL = 'fake-blip2';

/** A prompt whose fake answer is at least `min` tokens long (the fake engine's answers are 3-12 tokens). */
async function longPrompt(min: number): Promise<string> {
  const engine = new FakeEngine({ modelId: MODEL });
  for (let i = 0; i < 200; i++) {
    const prompt = `Question: tell me more ${i}? Answer:`;
    const [r] = await engine.generate([{ image: CHELSEA, prompt, params: defaultGenerationParams({ maxNewTokens: 100 }) }]);
    if (r!.sequences[0]!.tokenIds.length >= min) return `tell me more ${i}?`;
  }
  throw new Error('no long fake answer found');
}

/** Posts a streamed request; resolves once its first chunk arrived, with the rest of the answer to come. */
async function streamStarted(server: Blip2Server, body: Record<string, unknown>) {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  const done = (async () => {
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return { text, at: performance.now() };
      text += decoder.decode(value);
    }
  })();
  return { status: res.status, done };
}

async function timed(p: Promise<Posted>) {
  const r = await p;
  return { ...r, at: performance.now() };
}

describe('continuous batching with the fake engine', () => {
  for (const batching of ['continuous', 'static'] as const) {
    it(`${batching}: a short request that arrives while a long one decodes ${batching === 'continuous' ? 'finishes first' : 'waits for it'}`, async () => {
      const engine = new FakeEngine({ modelId: MODEL, tokenDelayMs: 40 });
      const question = await longPrompt(8);
      const server = await Blip2Server.start(engine, { port: 0, batching });
      try {
        expect(server.batching).toBe(batching);
        const long = await streamStarted(server, { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), question)], max_tokens: 100 });
        const short = await timed(postCompletion(server.url, { model: MODEL, messages: [imageMessage(dataUrl(CAMERA))], max_tokens: 1 }));
        const longDone = await long.done;
        expect(short.status).toBe(200);
        expect(short.json().choices[0].finish_reason).toBe('length');
        expect(sseEvents(longDone.text).at(-1)).toBe('[DONE]');
        if (batching === 'continuous') expect(short.at).toBeLessThan(longDone.at);
        else expect(short.at).toBeGreaterThan(longDone.at);
      } finally {
        await server.close();
      }
    });
  }

  it('frees the slot of a client that disconnects, for the next request', async () => {
    const engine = new FakeEngine({ modelId: MODEL, tokenDelayMs: 40 });
    const question = await longPrompt(8);
    const server = await Blip2Server.start(engine, { port: 0, maxBatch: 1 });
    try {
      const controller = new AbortController();
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), question)], max_tokens: 100, stream: true }),
        signal: controller.signal,
      });
      await res.body!.getReader().read();
      const started = performance.now();
      controller.abort();
      const next = await postCompletion(server.url, { model: MODEL, messages: [imageMessage(dataUrl(CAMERA))], max_tokens: 2 });
      expect(next.status).toBe(200);
      // The abandoned answer had 7 or more tokens of 40 ms to go; the next one needed 2.
      expect(performance.now() - started).toBeLessThan(7 * 40);
    } finally {
      await server.close();
    }
  });

  it('runs beam search and requests wider than the batch as whole batches beside it, with their usual answers', async () => {
    const engine = new FakeEngine({ modelId: MODEL, tokenDelayMs: 5 });
    const server = await Blip2Server.start(engine, { port: 0, maxBatch: 2 });
    try {
      const bodies = [
        { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), 'beams?')], num_beams: 3, n: 2 },
        { model: MODEL, messages: [imageMessage(dataUrl(CAMERA), 'samples?')], temperature: 1, seed: 4, n: 3 },
        { model: MODEL, messages: [imageMessage(dataUrl(CAMERA), 'greedy?')], max_tokens: 5 },
        { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), 'two samples?')], temperature: 0.7, seed: 9, n: 2 },
      ];
      const content = (r: Posted) => (r.json().choices as { message: { content: string } }[]).map((c) => c.message.content);
      const together = await Promise.all(bodies.map((b) => postCompletion(server.url, b)));
      const beforeAlone = engine.batchSizes.length;
      for (const [i, b] of bodies.entries()) expect(content(together[i]!)).toEqual(content(await postCompletion(server.url, b)));
      // Whole batches: the beam request and the 3-sample one (wider than 2 slots), together and again alone.
      expect(engine.batchSizes.slice(0, beforeAlone).reduce((a, n) => a + n, 0)).toBe(2);
      expect(engine.batchSizes.length - beforeAlone).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('answers 500 without internals when the decode batch fails, and keeps serving', async () => {
    const engine = new FakeEngine({ modelId: MODEL });
    let failures = 1;
    const flaky = Object.assign(Object.create(engine) as FakeEngine, {
      createDecodeBatch: (slots: number): DecodeBatch => {
        const batch = engine.createDecodeBatch(slots);
        return Object.assign(Object.create(batch) as DecodeBatch, {
          step: async () => {
            if (failures-- > 0) throw new Error('kernel exploded: secret internal detail');
            return batch.step();
          },
        });
      },
    });
    const logs: string[] = [];
    const server = await Blip2Server.start(flaky, { port: 0, log: (l) => logs.push(l) });
    try {
      const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 5 };
      const r = await postCompletion(server.url, body);
      expect(r.status).toBe(500);
      expect(r.json().error.code).toBe('internal_error');
      expect(r.text).not.toMatch(/secret/);
      expect(logs.join('\n')).toMatch(/secret internal detail/);
      expect((await postCompletion(server.url, body)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('continuous batching with the real engine on the tiny checkpoint', () => {
  let engine: Blip2Engine;
  let continuous: Blip2Server;
  let whole: Blip2Server;

  beforeAll(async () => {
    engine = new Blip2Engine(await Blip2.fromPretrained(TINY, { dtype: 'f32' }), 'tiny-blip2');
    continuous = await Blip2Server.start(engine, { port: 0, maxBatch: 3 });
    whole = await Blip2Server.start(engine, { port: 0, batching: 'static' });
  });

  afterAll(async () => {
    await continuous?.close();
    await whole?.close();
    await engine?.dispose();
  });

  it('static: runs requests of different lengths as one model call, each cut at its own length, streamed text too', async () => {
    const c = tinyCases[1]!;
    const request = (maxNewTokens: number, stop: string[] = []) => ({ image: imageBytesOf(c), prompt: c.prompt, params: defaultGenerationParams({ maxNewTokens, stop }) });
    const alone = await Promise.all([engine.generate([request(12)]), engine.generate([request(3)]), engine.generate([request(5, ['e'])])]);
    const calls = countGenerateCalls(engine.pipeline);
    try {
      const streamed = ['', '', ''];
      const together = await engine.generate([request(12), request(3), request(5, ['e'])], { onToken: (e) => (streamed[e.request] += e.text) });
      expect(calls.count).toBe(2); // the stop string makes its own settings group
      expect(together).toEqual(alone.map(([r]) => r));
      // What a request streamed is its answer (completions.ts sends any held-back rest at the end).
      together.forEach((r, i) => expect(r.sequences[0]!.text.startsWith(streamed[i]!)).toBe(true));
      expect(streamed[1]).toBe(together[1]!.sequences[0]!.text);
    } finally {
      calls.restore();
    }
  });

  it('gives the slot of a client that disconnects to the next request', async () => {
    const one = await Blip2Server.start(engine, { port: 0, maxBatch: 1 });
    try {
      const image = dataUrl(imageBytesOf(tinyCases[0]!));
      const controller = new AbortController();
      const res = await fetch(`${one.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-blip2', messages: [imageMessage(image)], max_tokens: 40, stream: true }),
        signal: controller.signal,
      });
      await res.body!.getReader().read();
      controller.abort();
      // Once the abandoned request is gone from the batch, the only slot serves the next one.
      await new Promise((r) => setTimeout(r, 50));
      const next = await postCompletion(one.url, { model: 'tiny-blip2', messages: [imageMessage(image)], max_tokens: 2 });
      expect(next.status).toBe(200);
      expect(next.json().usage.completion_tokens).toBeGreaterThan(0);
    } finally {
      await one.close();
    }
  });

  it('gives staggered streamed and plain requests the answers and usage they get alone', async () => {
    const bodies = tinyCases.slice(0, 6).map((c, i) => ({
      model: 'tiny-blip2',
      messages: [imageMessage(dataUrl(imageBytesOf(c)), c.prompt ? 'what is in the picture?' : undefined)],
      max_tokens: [3, 12, 1, 7, 10, 5][i]!,
      ...(i === 4 ? { temperature: 1, seed: 21, n: 2 } : {}),
      ...(i % 2 === 1 ? { stream: true, stream_options: { include_usage: true } } : {}),
    }));
    const answer = (r: Posted, streamed: boolean) => {
      if (!streamed) return { texts: (r.json().choices as { message: { content: string } }[]).map((c) => c.message.content), usage: r.json().usage };
      const events = sseEvents(r.text) as ({ choices: { index: number; delta: { content?: string } }[]; usage?: unknown } | string)[];
      const texts: string[] = [];
      let usage: unknown;
      for (const e of events) {
        if (typeof e === 'string') continue;
        for (const c of e.choices) texts[c.index] = (texts[c.index] ?? '') + (c.delta.content ?? '');
        usage = e.usage ?? usage;
      }
      return { texts, usage };
    };
    const alone: ReturnType<typeof answer>[] = [];
    for (const b of bodies) alone.push(answer(await postCompletion(whole.url, { ...b, stream: false, stream_options: undefined }), false));
    const pending = bodies.map(async (b, i) => {
      await new Promise((r) => setTimeout(r, 40 * i));
      return answer(await postCompletion(continuous.url, b), 'stream' in b);
    });
    expect(await Promise.all(pending)).toEqual(alone);
    expect(continuous.batchSizes.length).toBeGreaterThan(1);
  });
});
