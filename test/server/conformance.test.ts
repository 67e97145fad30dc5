/**
 * The server as OpenAI's clients expect it (issue 16): an unusable image is a 400 invalid_request_error whose
 * `param` is the image's path with indices, an unknown model a 404 model_not_found before anything else, one
 * context message with the real prompt count, served model ids as vLLM has them, and refusals in the log.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEngine } from '../../src/server/fake-engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { CHELSEA, dataUrl, pngHeader } from './support.js';

const MODEL = 'Salesforce/blip2-opt-2.7b';
const CONTEXT = 80;

interface Reply {
  status: number;
  text: string;
  json: () => Record<string, any>;
}

async function post(server: Blip2Server, body: unknown): Promise<Reply> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, any> };
}

/** A conversation whose image sits at messages[1].content[1] (after a system message and a text part). */
function withImage(url: string, extra: Record<string, unknown> = {}) {
  return {
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: [{ type: 'text', text: 'what is it?' }, { type: 'image_url', image_url: { url } }] },
    ],
    ...extra,
  };
}
const IMAGE_PARAM = 'messages[1].content[1].image_url.url';

function expectError(r: Reply, status: number, fields: { type?: string; code?: string; param?: string | null }) {
  expect(r.status, r.text).toBe(status);
  const { error } = r.json();
  expect(typeof error.message).toBe('string');
  expect(error).toMatchObject(fields);
}

describe('OpenAI conformance of errors (fake engine)', () => {
  let server: Blip2Server;
  let client: OpenAI;
  const logs: string[] = [];

  beforeAll(async () => {
    server = await Blip2Server.start(new FakeEngine({ modelId: MODEL, contextLength: CONTEXT }), {
      port: 0,
      log: (line) => logs.push(line),
      limits: { maxImageBytes: 400_000, maxImagePixels: 4_000_000 },
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  afterAll(async () => {
    await server.close();
  });

  it('answers every unusable image with 400 invalid_request_error naming the image by its path with indices', async () => {
    const unusable: [string, Uint8Array | string][] = [
      ['unsupported_image_format', new TextEncoder().encode('plain text, not an image')],
      ['invalid_image', pngHeader(100, 100).subarray(0, 20)], // cut inside the header
      ['invalid_image', CHELSEA.subarray(0, Math.floor(CHELSEA.length / 2))], // cut inside the pixel data
      ['invalid_image', new Uint8Array([...pngHeader(64, 64), ...new Uint8Array(100).fill(7)])], // header fine, data broken
      ['image_too_large', pngHeader(5000, 5000)], // pixels, from the header
      ['image_too_large', new Uint8Array(500_000)], // bytes
      ['unsupported_image_format', 'data:text/plain;base64,aGVsbG8='],
      ['invalid_base64', 'data:image/png;base64,@@not*base64!!'],
    ];
    for (const [code, image] of unusable) {
      const r = await post(server, withImage(typeof image === 'string' ? image : dataUrl(image)));
      expectError(r, 400, { type: 'invalid_request_error', code, param: IMAGE_PARAM });
    }
    // The official client raises BadRequestError for them (it raises that class for 400 only).
    const truncated = dataUrl(CHELSEA.subarray(0, 200));
    await expect(client.chat.completions.create(withImage(truncated) as never)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(client.chat.completions.create({ ...withImage(truncated), stream: true } as never)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    // A second image is refused at its own path.
    const two = withImage(dataUrl(CHELSEA));
    (two.messages[1]!.content as unknown[]).push({ type: 'image_url', image_url: { url: dataUrl(CHELSEA) } });
    expectError(await post(server, two), 400, { code: 'too_many_images', param: 'messages[1].content[2].image_url.url' });
    expect((await post(server, withImage(dataUrl(CHELSEA)))).status).toBe(200);
  });

  it('answers an unknown model with 404 model_not_found before looking at the rest of the request', async () => {
    const expectNotFound = (r: Reply) => expectError(r, 404, { type: 'invalid_request_error', code: 'model_not_found', param: 'model' });
    expectNotFound(await post(server, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }));
    expectNotFound(await post(server, { ...withImage('data:image/png;base64,!!'), model: 'gpt-4o', temperature: 9, n: 0 }));
    const res = await fetch(`${server.url}/v1/models/gpt-4o`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    // A missing model is still a 400 for the field.
    expectError(await post(server, { messages: [] }), 400, { code: 'missing_model', param: 'model' });
  });

  it('says once that the context overflows, with the prompt count of usage (image tokens included) and the largest max_tokens that fits', async () => {
    const ok = await post(server, withImage(dataUrl(CHELSEA), { max_tokens: 1 }));
    expect(ok.status).toBe(200);
    const promptTokens = ok.json().usage.prompt_tokens as number;
    const room = CONTEXT - promptTokens;
    expect(room).toBeGreaterThan(1);
    for (const [field, value] of [['max_tokens', room + 1], ['max_tokens', 60], ['max_completion_tokens', room + 5]] as const) {
      const r = await post(server, withImage(dataUrl(CHELSEA), { [field]: value }));
      expectError(r, 400, { code: 'context_length_exceeded', param: 'messages' });
      expect(r.json().error.message).toBe(
        `the prompt is ${promptTokens} tokens (image tokens included) and ${field} is ${value}: ${promptTokens + value} tokens, ` +
          `more than the model's context of ${CONTEXT}; ${field} can be at most ${room} for this prompt`,
      );
    }
    // The server's default (30) counts the same way, and says it was the default: a question one token too long
    // ('what is it?' is 4 of the fake engine's tokens, each 'why' one).
    const long = withImage(dataUrl(CHELSEA));
    long.messages[1]!.content = [{ type: 'text', text: 'why '.repeat(CONTEXT - 30 - promptTokens + 4 + 1) }, { type: 'image_url', image_url: { url: dataUrl(CHELSEA) } }];
    const r = await post(server, long);
    expectError(r, 400, { code: 'context_length_exceeded' });
    expect(r.json().error.message).toMatch(/ and max_tokens is 30 \(the default\): /);
    const fits = await post(server, withImage(dataUrl(CHELSEA), { max_tokens: room }));
    expect(fits.status).toBe(200);
    expect(fits.json().usage.prompt_tokens).toBe(promptTokens);
  });

  it('logs refused requests with type, code, param and message, never the image data', async () => {
    logs.length = 0;
    await post(server, withImage(dataUrl(CHELSEA.subarray(0, 200))));
    const base64 = Buffer.from(CHELSEA).toString('base64');
    // Malformed JSON whose parser message quotes a piece of the body: the base64 must not reach the log.
    await post(server, `{"model": "${MODEL}", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,${base64}" !!`);
    await post(server, { model: 'gpt-4o', messages: [] });
    expect(logs).toHaveLength(3);
    expect(logs[0]).toMatch(
      /^POST \/v1\/chat\/completions 400 \d+ ms invalid_request_error invalid_image \(messages\[1\]\.content\[1\]\.image_url\.url\): the image cannot be used: truncated PNG/,
    );
    expect(logs[1]).toMatch(/^POST \/v1\/chat\/completions 400 \d+ ms invalid_request_error invalid_json: request body is not valid JSON/);
    expect(logs[2]).toMatch(/ 404 \d+ ms invalid_request_error model_not_found \(model\): the model 'gpt-4o' does not exist/);
    for (const line of logs) {
      expect(line.length).toBeLessThan(500);
      expect(line).not.toMatch(/[A-Za-z0-9+/]{24,}/);
    }
  });
});

describe('served model ids', () => {
  it('serves --served-model-name ids (the first in responses) and no other', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: '/srv/models/blip2-opt-2.7b' }), { port: 0, servedModelNames: ['blip2', 'gpt-4o-mini'] });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      expect((await client.models.list()).data.map((m) => m.id)).toEqual(['blip2', 'gpt-4o-mini']);
      expect((await client.models.retrieve('gpt-4o-mini')).id).toBe('gpt-4o-mini');
      const r = await client.chat.completions.create(withImage(dataUrl(CHELSEA), { model: 'gpt-4o-mini' }) as never);
      expect((r as OpenAI.Chat.ChatCompletion).model).toBe('blip2');
      for (const other of ['/srv/models/blip2-opt-2.7b', 'blip2-opt-2.7b']) {
        expectError(await post(server, withImage(dataUrl(CHELSEA), { model: other })), 404, { code: 'model_not_found' });
      }
      expect(((await (await fetch(`${server.url}/health`)).json()) as { model: string }).model).toBe('blip2');
    } finally {
      await server.close();
    }
  });

  it('answers with the served id, not the alias a request used', async () => {
    const server = await Blip2Server.start(new FakeEngine({ modelId: MODEL }), { port: 0 });
    try {
      const r = await post(server, withImage(dataUrl(CHELSEA), { model: 'blip2-opt-2.7b', stream: true }));
      const chunks = r.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { model: string });
      expect(chunks.length).toBeGreaterThan(1);
      expect(new Set(chunks.map((c) => c.model))).toEqual(new Set([MODEL]));
      expect((await post(server, withImage(dataUrl(CHELSEA), { model: 'blip2-opt-2.7b' }))).json().model).toBe(MODEL);
    } finally {
      await server.close();
    }
  });
});
