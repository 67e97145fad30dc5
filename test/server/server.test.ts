import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEngine } from '../../src/server/fake-engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { connect } from 'node:net';
import { CAMERA, CHELSEA, dataUrl, pngHeader, startImageServer, waitUntilRunning, type FileServer } from './support.js';

const MODEL = 'Salesforce/blip2-opt-2.7b';

function imageMessage(url: string, text?: string): OpenAI.Chat.ChatCompletionMessageParam {
  const parts: OpenAI.Chat.ChatCompletionContentPart[] = [{ type: 'image_url', image_url: { url } }];
  if (text !== undefined) parts.push({ type: 'text', text });
  return { role: 'user', content: parts };
}

async function post(server: Blip2Server, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, any> };
}

function expectOpenAiError(r: { status: number; json: () => Record<string, any> }, status: number, code?: string) {
  expect(r.status).toBe(status);
  const { error } = r.json();
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(typeof error.type).toBe('string');
  expect('param' in error && 'code' in error).toBe(true);
  if (code) expect(error.code).toBe(code);
}

describe('OpenAI-compatible server with the fake engine', () => {
  let engine: FakeEngine;
  let server: Blip2Server;
  let images: FileServer;
  let client: OpenAI;

  beforeAll(async () => {
    engine = new FakeEngine({ modelId: MODEL, tokenDelayMs: 2 });
    server = await Blip2Server.start(engine, {
      port: 0,
      allowPrivateImageUrls: true,
      maxBatch: 8,
      limits: { maxImageBytes: 400_000, maxImagePixels: 4_000_000, maxPromptTokens: 64, maxTokens: 100 },
    });
    images = await startImageServer();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  afterAll(async () => {
    await server.close();
    await images.close();
  });

  it('answers a question about a base64 image through the openai client', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [imageMessage(dataUrl(CHELSEA), 'what is in the picture?')],
      max_tokens: 20,
    });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe(MODEL);
    expect(r.choices).toHaveLength(1);
    const direct = await engine.generate([
      { image: CHELSEA, prompt: 'Question: what is in the picture? Answer:', params: { ...defaults(), maxNewTokens: 20 } },
    ]);
    expect(r.choices[0]!.message.content).toBe(direct[0]!.sequences[0]!.text);
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(r.choices[0]!.finish_reason).toBe(direct[0]!.sequences[0]!.finishReason);
    expect(r.usage).toEqual({
      prompt_tokens: direct[0]!.promptTokens,
      completion_tokens: direct[0]!.completionTokens,
      total_tokens: direct[0]!.promptTokens + direct[0]!.completionTokens,
    });
  });

  it('captions an image fetched from a URL (private addresses allowed by the flag), following a redirect', async () => {
    const viaUrl = await client.chat.completions.create({ model: MODEL, messages: [imageMessage(`${images.url}/redirect`)] });
    const viaData = await client.chat.completions.create({ model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))] });
    expect(viaUrl.choices[0]!.message.content).toBe(viaData.choices[0]!.message.content);
    expect(viaUrl.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(images.requests).toContain('/chelsea.png');
  });

  it('streams chat.completion.chunk events that add up to the plain answer, with usage', async () => {
    const messages = [imageMessage(dataUrl(CAMERA), 'what is this?')];
    const plain = await client.chat.completions.create({ model: MODEL, messages });
    const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let contentChunks = 0;
    for await (const c of stream) {
      expect(c.object).toBe('chat.completion.chunk');
      if (c.usage) usage = c.usage;
      for (const choice of c.choices) {
        if (choice.delta.content) {
          text += choice.delta.content;
          contentChunks++;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(contentChunks).toBeGreaterThan(1);
    expect(finish).toBe(plain.choices[0]!.finish_reason);
    expect(usage).toEqual(plain.usage);
  });

  it('ends the raw event stream with data: [DONE]', async () => {
    const r = await post(server, { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], stream: true });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(events.slice(0, -1).every((e) => e.startsWith('data: {'))).toBe(true);
  });

  it('builds the BLIP-2 chat prompt from earlier turns, ignoring system messages', async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are helpful.' },
        imageMessage(dataUrl(CHELSEA), 'what animal is this?'),
        { role: 'assistant', content: 'a cat' },
        { role: 'user', content: 'what colour is it?' },
      ],
    });
    const direct = await engine.generate([
      { image: CHELSEA, prompt: 'Question: what animal is this? Answer: a cat. Question: what colour is it? Answer:', params: defaults() },
    ]);
    expect(r.choices[0]!.message.content).toBe(direct[0]!.sequences[0]!.text);
  });

  it('returns n sampled choices, reproducible with a seed, and honours stop strings', async () => {
    const messages = [imageMessage(dataUrl(CHELSEA), 'describe it')];
    const a = await client.chat.completions.create({ model: MODEL, messages, n: 3, temperature: 0.8, seed: 7 });
    const b = await client.chat.completions.create({ model: MODEL, messages, n: 3, temperature: 0.8, seed: 7 });
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(a.choices.map((c) => c.message.content)).toEqual(b.choices.map((c) => c.message.content));
    const first = a.choices[0]!.message.content!;
    const words = first.split(' ');
    expect(words.length).toBeGreaterThan(2);
    const stopped = await client.chat.completions.create({ model: MODEL, messages, n: 3, temperature: 0.8, seed: 7, stop: [` ${words[2]}`] });
    expect(stopped.choices[0]!.message.content).toBe(first.slice(0, first.indexOf(` ${words[2]}`)));
    expect(stopped.choices[0]!.finish_reason).toBe('stop');
  });

  it('lists the model and answers health checks', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    const one = await client.models.retrieve('blip2-opt-2.7b');
    expect(one.id).toBe(MODEL);
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe('ok');
  });

  it('gives each bad request an OpenAI-shaped 4xx and keeps serving', async () => {
    const ok = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), 'q?')] };
    expectOpenAiError(await post(server, '{"model": "x", "messages": [', {}), 400, 'invalid_json');
    expectOpenAiError(await post(server, { model: MODEL, messages: [{ role: 'user', content: 'no image here' }] }), 400, 'missing_image');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage('data:image/png;base64,@@not*base64!!')] }), 400, 'invalid_base64');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(new TextEncoder().encode('plain text, not an image')))] }), 400, 'unsupported_image_format');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(pngHeader(100, 100).subarray(0, 20)))] }), 400, 'invalid_image');
    const brokenPng = new Uint8Array([...pngHeader(100, 100), ...new Uint8Array(200).fill(7)]);
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(brokenPng))] }), 400, 'invalid_image');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(pngHeader(5000, 5000)))] }), 400, 'image_too_large');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(new Uint8Array(500_000)))] }), 400, 'image_too_large');
    expectOpenAiError(await post(server, { ...ok, model: 'gpt-4o' }), 404, 'model_not_found');
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(dataUrl(CHELSEA), 'word '.repeat(100))] }), 400, 'context_length_exceeded');
    expectOpenAiError(await post(server, { ...ok, max_tokens: 101 }), 400);
    expectOpenAiError(await post(server, { ...ok, n: 2 }), 400);
    expectOpenAiError(await post(server, { ...ok, temperature: 'hot' }), 400);
    expectOpenAiError(await post(server, { ...ok, messages: [imageMessage(`${images.url}/missing`)] }), 400, 'image_fetch_failed');
    const wrongType = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body: 'x=1', headers: { 'content-type': 'text/plain' } });
    expect(wrongType.status).toBe(415);
    const wrongMethod = await fetch(`${server.url}/v1/chat/completions`);
    expect(wrongMethod.status).toBe(405);
    const unknown = await fetch(`${server.url}/v1/embeddings`, { method: 'POST' });
    expect(unknown.status).toBe(404);
    const still = await post(server, ok);
    expect(still.status).toBe(200);
  });

  it('maps errors to the openai client exception classes', async () => {
    await expect(client.chat.completions.create({ model: 'nope', messages: [imageMessage(dataUrl(CHELSEA))] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('batches 20 concurrent requests and gives each the same answer as alone', async () => {
    const bodies = Array.from({ length: 20 }, (_, i) => ({
      model: MODEL,
      messages: [imageMessage(dataUrl(i % 2 ? CHELSEA : CAMERA), i % 3 ? `question ${i}?` : undefined)],
      max_tokens: 5 + (i % 7),
    }));
    const alone: string[] = [];
    for (const b of bodies) alone.push((await post(server, b)).json().choices[0].message.content);
    const before = server.batchSizes.length;
    const together = await Promise.all(bodies.map((b) => post(server, b)));
    expect(together.map((r) => r.status)).toEqual(bodies.map(() => 200));
    expect(together.map((r) => r.json().choices[0].message.content)).toEqual(alone);
    const batches = server.batchSizes.slice(before);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(20);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(Math.max(...batches)).toBeLessThanOrEqual(8);
    expect(batches.length).toBeLessThan(20);
  });
});

describe('image URL policy in the server', () => {
  it('refuses an image URL on a private address without the allow flag, and keeps serving', async () => {
    const images = await startImageServer();
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL }), { port: 0 });
    try {
      for (const url of [`${images.url}/chelsea.png`, 'http://10.1.2.3/x.png', 'http://[::1]/x.png', 'http://169.254.169.254/latest/meta-data']) {
        expectOpenAiError(await post(server, { model: MODEL, messages: [imageMessage(url)] }), 400, 'image_url_not_allowed');
      }
      expectOpenAiError(await post(server, { model: MODEL, messages: [imageMessage('file:///etc/passwd')] }), 400, 'invalid_image_url');
      expect(images.requests).toEqual([]);
      expect((await post(server, { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))] })).status).toBe(200);
    } finally {
      await server.close();
      await images.close();
    }
  });
});

describe('API key', () => {
  it('requires the bearer key on /v1 routes', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL }), { port: 0, apiKey: 'sk-test-123' });
    try {
      const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))] };
      expectOpenAiError(await post(server, body), 401, 'invalid_api_key');
      expectOpenAiError(await post(server, body, { authorization: 'Bearer wrong' }), 401, 'invalid_api_key');
      expect((await post(server, body, { authorization: 'Bearer sk-test-123' })).status).toBe(200);
      const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
      await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      const good = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-test-123', maxRetries: 0 });
      expect((await good.models.list()).data).toHaveLength(1);
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('engine failures, time limits and disconnects', () => {
  it('answers 500 without internals when the engine fails, and keeps serving', async () => {
    const engine = new FakeEngine({ modelId: MODEL });
    let fail = true;
    const flaky = Object.assign(Object.create(engine) as FakeEngine, {
      generate: async (...args: Parameters<FakeEngine['generate']>) => {
        if (fail) throw new Error('GPU device lost: secret internal detail');
        return engine.generate(...args);
      },
    });
    const logs: string[] = [];
    const server = await Blip2Server.start(flaky, { port: 0, batching: 'static', log: (l) => logs.push(l) });
    try {
      const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))] };
      const r = await post(server, body);
      expectOpenAiError(r, 500, 'internal_error');
      expect(r.text).not.toMatch(/secret/);
      expect(logs.join('\n')).toMatch(/secret internal detail/);
      fail = false;
      expect((await post(server, body)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('fails a request that outlives the time limit with 503', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL, tokenDelayMs: 100 }), { port: 0, limits: { requestTimeoutMs: 150 } });
    try {
      const r = await post(server, { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 30 });
      expectOpenAiError(r, 503, 'request_timeout');
    } finally {
      await server.close();
    }
  });

  it('drops the work of a client that disconnects mid-stream and keeps serving', async () => {
    const engine = new FakeEngine({ modelId: MODEL, tokenDelayMs: 30 });
    const logs: string[] = [];
    const server = await Blip2Server.start(engine, { port: 0, log: (l) => logs.push(l) });
    try {
      const controller = new AbortController();
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 30, stream: true }),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      controller.abort();
      const started = Date.now();
      const next = await post(server, { model: MODEL, messages: [imageMessage(dataUrl(CAMERA))], max_tokens: 3 });
      expect(next.status).toBe(200);
      // The abandoned request no longer holds the engine: the next one does not wait for its 30 tokens.
      expect(Date.now() - started).toBeLessThan(30 * 30);
      expect(logs.some((l) => / 499 \d+ ms$/.test(l))).toBe(true);
      expect(logs.some((l) => l.startsWith('error:'))).toBe(false);
    } finally {
      await server.close();
    }
  });
});

describe('queue limits and shutdown', () => {
  it('answers 429 when the queue is full', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL, tokenDelayMs: 20 }), { port: 0, maxBatch: 1, maxQueue: 1 });
    try {
      const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 10 };
      const results = await Promise.all(Array.from({ length: 5 }, () => post(server, body)));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
      const limited = results.filter((r) => r.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      for (const r of limited) expectOpenAiError(r, 429, 'rate_limit_exceeded');
    } finally {
      await server.close();
    }
  });

  it('finishes in-flight requests on close, then refuses new connections', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL, tokenDelayMs: 30 }), { port: 0 });
    const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA), 'slow?')], max_tokens: 8 };
    const inFlight = post(server, body);
    await waitUntilRunning(server.url); // a fixed delay is no guarantee on a loaded machine
    const closed = server.close();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.json().choices[0].message.content.length).toBeGreaterThan(0);
    await closed;
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });

  it('fails requests that outlive the shutdown grace period with 503', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL, tokenDelayMs: 200 }), { port: 0, shutdownGraceMs: 100 });
    const body = { model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 30 };
    const inFlight = post(server, body);
    await waitUntilRunning(server.url);
    await server.close();
    expectOpenAiError(await inFlight, 503);
  });

  it('answers 503 to a request written on an open connection after the shutdown began (no reset, no hang)', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL }), { port: 0 });
    const socket = connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    let reply = '';
    socket.on('data', (d: Buffer) => (reply += d.toString()));
    const ended = new Promise((r) => socket.once('close', r));
    const closed = server.close();
    // The client wrote its request before it learnt of the shutdown; the server reads it only now.
    const body = JSON.stringify({ model: MODEL, messages: [imageMessage(dataUrl(CHELSEA))], max_tokens: 3 });
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await ended;
    await closed;
    expect(reply).toMatch(/^HTTP\/1\.1 503 /);
    expect(reply).toMatch(/connection: close/i);
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).error.code).toBe('server_shutting_down');
  });

  it('closes a connection that stays silent through the shutdown', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL }), { port: 0 });
    const socket = connect(server.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    const ended = new Promise((r) => socket.once('close', r));
    const started = Date.now();
    await server.close();
    await ended;
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

function defaults() {
  return { maxNewTokens: 30, numBeams: 1, temperature: 0, topP: 1, topK: 0, seed: 0, stop: [], repetitionPenalty: 1, n: 1 };
}
