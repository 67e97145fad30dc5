/**
 * `blip2 serve` end to end with the real engine on every fixture checkpoint (test/fixtures/* and
 * BLIP2_FIXTURES; f32 weights): the official `openai` client must get exactly the text of transformers' greedy
 * generation (cases.json), plain and streamed, batched or alone, and bad input must get OpenAI-shaped errors
 * without stopping the server. Cases are picked by role (caption, question), not by name.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Blip2 } from '../../src/pipeline.js';
import { resolveGenerationConfig } from '../../src/generation/generate.js';
import { chatPrompt } from '../../src/processing/index.js';
import { Blip2Engine } from '../../src/server/blip2-engine.js';
import type { Engine, GenerateOptions, GenerateRequest, GenerateResult } from '../../src/server/engine.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { Tensor } from '../../src/tensor.js';
import { captionCases, dataUrlOf, greedyAnswerOf, greedyTokensOf, imageBytesOf, mimeOf, questionCases, questionOf } from '../support/cases.js';
import { loadFixtures, type Fixture, type FixtureCase } from '../support/fixtures.js';
import { countGenerateCalls, pngHeader } from './support.js';

/**
 * The real engine, recording what the server asked of it (prompts) and what it produced (token ids); `hold`
 * keeps batches waiting, so that a test can fill the queue behind a busy engine deterministically.
 */
class RecordingEngine implements Engine {
  readonly calls: { prompts: string[]; results: GenerateResult[] }[] = [];
  hold: Promise<void> | null = null;
  constructor(readonly inner: Blip2Engine) {}
  get modelId() {
    return this.inner.modelId;
  }
  get contextLength() {
    return this.inner.contextLength;
  }
  countTokens(text: string) {
    return this.inner.countTokens(text);
  }
  promptTokens(prompt: string) {
    return this.inner.promptTokens(prompt);
  }
  async generate(requests: readonly GenerateRequest[], options?: GenerateOptions) {
    await this.hold;
    const results = await this.inner.generate(requests, options);
    this.calls.push({ prompts: requests.map((r) => r.prompt), results });
    return results;
  }
  dispose() {
    return this.inner.dispose();
  }
}

interface ImageServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serves the fixture's images as /{image_file} on 127.0.0.1. */
async function serveFixtureImages(fx: Fixture): Promise<ImageServer> {
  const files = new Map(fx.manifest.cases.map((c) => [`/${c.image_file}`, { bytes: imageBytesOf(fx, c), type: mimeOf(c) }]));
  const requests: string[] = [];
  const http: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const file = files.get(req.url ?? '');
    if (!file) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.bytes.length }).end(file.bytes);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const bytesDataUrl = (bytes: Uint8Array) => `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`;

function userMessage(imageUrl: string, text: string | null): OpenAI.Chat.ChatCompletionUserMessageParam {
  const parts: OpenAI.Chat.ChatCompletionContentPart[] = [{ type: 'image_url', image_url: { url: imageUrl } }];
  if (text !== null) parts.push({ type: 'text', text });
  return { role: 'user', content: parts };
}


async function post(server: Blip2Server, body: unknown) {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as Record<string, any> };
}

function expectOpenAiError(r: { status: number; json: () => Record<string, any> }, status: number, code: string) {
  expect(r.status).toBe(status);
  const { error } = r.json();
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(0);
  expect(typeof error.type).toBe('string');
  expect('param' in error).toBe(true);
}

for (const fx of loadFixtures()) {
  const MODEL = basename(fx.dir);
  const MAX = fx.maxNewTokens;
  const cases = fx.manifest.cases;
  const captions = captionCases(fx);
  const questions = questionCases(fx);
  /** A caption case and a question case (either kind when the fixture lacks the other). */
  const caption = captions[0] ?? cases[0]!;
  const question = questions[0] ?? cases.at(-1)!;
  /** Another image with the other kind of prompt, for tests that want two different requests. */
  const other = [...questions].reverse().find((c) => c.image !== caption.image) ?? cases.at(-1)!;

  /** The request a fixture case becomes: its image, and its question when it has one. */
  const caseBody = (c: FixtureCase, imageUrl = dataUrlOf(fx, c), maxTokens = MAX) => ({ model: MODEL, max_tokens: maxTokens, messages: [userMessage(imageUrl, questionOf(c))] });
  const usageOf = (c: FixtureCase) => ({
    prompt_tokens: c.input_ids.length,
    completion_tokens: greedyTokensOf(fx, c).length,
    total_tokens: c.input_ids.length + greedyTokensOf(fx, c).length,
  });
  /** 'stop' where transformers generated the eos within the fixture's tokens. */
  const finishOf = (c: FixtureCase) => (greedyTokensOf(fx, c).length < c.greedy.new_tokens.length ? 'stop' : 'length');

  describe(`blip2 serve with the real engine: ${fx.name}`, () => {
    let engine: RecordingEngine;
    let server: Blip2Server;
    let images: ImageServer;
    let client: OpenAI;

    beforeAll(async () => {
      engine = new RecordingEngine(new Blip2Engine(await Blip2.fromPretrained(fx.dir, { dtype: 'f32' }), MODEL));
      server = await Blip2Server.start(engine, { port: 0, allowPrivateImageUrls: true, maxBatch: 8 });
      images = await serveFixtureImages(fx);
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    });

    afterAll(async () => {
      await server?.close();
      await images?.close();
      await engine?.dispose();
    });

    const health = async () => (await (await fetch(`${server.url}/health`)).json()) as { queued: number; running_batches: number };

    /**
     * Posts `bodies` while the engine is held on a first request, so that they all wait in the queue and then
     * run as one batch; returns their responses.
     */
    async function behindBusyEngine(bodies: unknown[]) {
      let release = () => {};
      engine.hold = new Promise<void>((resolve) => (release = resolve));
      let busy: ReturnType<typeof post> | undefined;
      let queued: ReturnType<typeof post>[] = [];
      try {
        busy = post(server, caseBody(other));
        await until('the first batch to start', async () => (await health()).running_batches === 1);
        queued = bodies.map((b) => post(server, b));
        await until(`${bodies.length} queued requests`, async () => (await health()).queued === bodies.length);
      } finally {
        engine.hold = null;
        release();
      }
      expect((await busy).status).toBe(200);
      return Promise.all(queued);
    }

    /** A good request still gets the fixture's answer: the server kept serving. */
    async function expectStillServing(s = server) {
      const c = other;
      const r = await post(s, caseBody(c));
      expect(r.status).toBe(200);
      expect(r.json().choices[0].message.content).toBe(greedyAnswerOf(c));
    }

    it.each([caption, question].map((c) => ({ c, name: c.name })))('answers $name through the openai client with transformers greedy text and tokens', async ({ c }) => {
      const r = await client.chat.completions.create(caseBody(c));
      expect(r.object).toBe('chat.completion');
      expect(r.model).toBe(MODEL);
      expect(r.choices).toHaveLength(1);
      expect(r.choices[0]!.message.content).toBe(greedyAnswerOf(c));
      expect(r.choices[0]!.finish_reason).toBe(finishOf(c));
      expect(r.usage).toEqual(usageOf(c));
      const last = engine.calls.at(-1)!;
      expect(last.prompts).toEqual([c.prompt]);
      expect(last.results[0]!.sequences[0]!.tokenIds).toEqual(greedyTokensOf(fx, c));
    });

    it.each([caption, question].map((c) => ({ c, name: c.name })))('streams $name: the deltas add up to the same text, with usage and [DONE]', async ({ c }) => {
      const stream = await client.chat.completions.create({ ...caseBody(c), stream: true, stream_options: { include_usage: true } });
      let text = '';
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        expect(chunk.object).toBe('chat.completion.chunk');
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices) {
          text += choice.delta.content ?? '';
          finish = choice.finish_reason ?? finish;
        }
      }
      expect(text).toBe(greedyAnswerOf(c));
      expect(finish).toBe(finishOf(c));
      expect(usage).toEqual(usageOf(c));
      expect(chunks).toBeGreaterThan(3);

      // The raw event stream: role first, content deltas, the finish reason, usage alone, then [DONE].
      const raw = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...caseBody(c), stream: true, stream_options: { include_usage: true } }),
      });
      expect(raw.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = (await raw.text()).split('\n\n').filter((e) => e.length > 0);
      expect(events.at(-1)).toBe('data: [DONE]');
      expect(events.slice(0, -1).every((e) => e.startsWith('data: {'))).toBe(true);
      const bodies = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)) as OpenAI.Chat.ChatCompletionChunk);
      expect(bodies[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
      const usageChunk = bodies.at(-1)!;
      expect(usageChunk.choices).toEqual([]);
      expect(usageChunk.usage).toEqual(usageOf(c));
      expect(bodies.at(-2)!.choices[0]!.finish_reason).toBe(finishOf(c));
      expect(bodies.flatMap((b) => b.choices.map((ch) => ch.delta.content ?? '')).join('')).toBe(greedyAnswerOf(c));
      expect(bodies.slice(0, -1).every((b) => b.usage === null)).toBe(true);
    });

    it('returns the three beams best first, plain and streamed (the text as one delta per choice)', async () => {
      const c = question;
      const answers = c.beam.beam3_texts.map((t) => greedyAnswerOf(c, t));
      const body = { ...caseBody(c), num_beams: 3, n: 3 };
      const plain = await post(server, body);
      expect(plain.status).toBe(200);
      expect((plain.json().choices as { message: { content: string } }[]).map((ch) => ch.message.content)).toEqual(answers);
      const streamed = ['', '', ''];
      for await (const chunk of await client.chat.completions.create({ ...caseBody(c), n: 3, stream: true, ...{ num_beams: 3 } })) {
        for (const ch of chunk.choices) streamed[ch.index] += ch.delta.content ?? '';
      }
      expect(streamed).toEqual(answers);
    });

    it('gives the same text for a base64 data URL and an http URL on 127.0.0.1 (private URLs allowed)', async () => {
      for (const c of [captions.at(-1) ?? caption, other]) {
        const viaData = await client.chat.completions.create(caseBody(c));
        const viaUrl = await client.chat.completions.create(caseBody(c, `${images.url}/${c.image_file}`));
        expect(viaData.choices[0]!.message.content).toBe(greedyAnswerOf(c));
        expect(viaUrl.choices[0]!.message.content).toBe(viaData.choices[0]!.message.content);
        expect(viaUrl.usage).toEqual(viaData.usage);
        expect(images.requests).toContain(`/${c.image_file}`);
      }
    });

    it('batches 20 concurrent mixed requests and gives each the answer it gets alone', async () => {
      // Captions and questions over the three images, some by URL, two lengths (two parameter groups per batch).
      const bodies = Array.from({ length: 20 }, (_, i) => {
        const c = cases[i % cases.length]!;
        return caseBody(c, i % 4 === 3 ? `${images.url}/${c.image_file}` : dataUrlOf(fx, c), i % 5 === 4 ? 5 : MAX);
      });
      const alone: Awaited<ReturnType<typeof post>>[] = [];
      for (const b of bodies) alone.push(await post(server, b));
      expect(alone.map((r) => r.status)).toEqual(bodies.map(() => 200));
      bodies.forEach((b, i) => {
        if (b.max_tokens === MAX) expect(alone[i]!.json().choices[0].message.content).toBe(greedyAnswerOf(cases[i % cases.length]!));
      });
      const answerOf = (r: { status: number; json: () => Record<string, any> }) => {
        expect(r.status).toBe(200);
        return { content: r.json().choices[0].message.content as string, usage: r.json().usage as OpenAI.CompletionUsage };
      };
      const streamAnswer = async (b: (typeof bodies)[number]) => {
        let content = '';
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of await client.chat.completions.create({ ...b, stream: true, stream_options: { include_usage: true } })) {
          content += chunk.choices[0]?.delta.content ?? '';
          usage = chunk.usage ?? usage;
        }
        return { content, usage };
      };

      // A few of them streamed: their deltas are cut out of a batch's rows.
      const streamed = (i: number) => i % 7 === 6;
      const batchesBefore = server.batchSizes.length;
      const together = await Promise.all(bodies.map((b, i) => (streamed(i) ? streamAnswer(b) : post(server, b).then(answerOf))));
      expect(together).toEqual(alone.map(answerOf));
      const batches = server.batchSizes.slice(batchesBefore);
      expect(batches.reduce((a, b) => a + b, 0)).toBe(20);
      expect(batches.length).toBeLessThan(20);
      expect(Math.max(...batches)).toBeGreaterThan(1);
    });

    it('gives seeded sampled requests the same choices alone and batched into one model call', async () => {
      const sampled = (c: FixtureCase, seed: number) => ({ ...caseBody(c), temperature: 1, seed, n: 2 });
      const choices = (r: { json: () => Record<string, any> }) => (r.json().choices as { message: { content: string } }[]).map((ch) => ch.message.content);
      const alone = await post(server, sampled(caption, 5));
      const otherAlone = await post(server, sampled(other, 9));
      expect(alone.status).toBe(200);
      // Count the model's generate calls: both sampled requests (other seeds, same settings) share one.
      const modelCalls = countGenerateCalls(engine.inner.pipeline);
      try {
        const [second, together] = await behindBusyEngine([sampled(other, 9), sampled(caption, 5)]);
        expect(choices(together!)).toEqual(choices(alone));
        expect(choices(second!)).toEqual(choices(otherAlone));
        expect(modelCalls.count).toBe(2); // the busy greedy request, then the two sampled ones together
      } finally {
        modelCalls.restore();
      }
      expect(new Set(choices(alone)).size).toBe(2);
    });

    it('refuses bad input with OpenAI-shaped errors and keeps serving', async () => {
      const good = caseBody(question);
      const withImage = (bytes: Uint8Array) => ({ ...good, messages: [userMessage(bytesDataUrl(bytes), 'what is it?')] });

      expectOpenAiError(await post(server, withImage(new TextEncoder().encode('these bytes are not an image'))), 400, 'unsupported_image_format');
      await expectStillServing();
      expectOpenAiError(await post(server, withImage(pngHeader(20_000, 20_000))), 400, 'image_too_large');
      await expectStillServing();
      expectOpenAiError(await post(server, { ...good, model: 'gpt-4o' }), 404, 'model_not_found');
      await expectStillServing();
      expectOpenAiError(await post(server, { ...good, max_tokens: 513 }), 400, 'invalid_value');
      // One message for a prompt that leaves too little room, counting what usage.prompt_tokens counts (image
      // query tokens and BOS too) and naming the largest max_tokens that fits; that one then works. (Where the
      // context is longer than the server's max_tokens limit of 512, that limit answers first.)
      const context = engine.contextLength;
      const promptTokens = usageOf(question).prompt_tokens;
      const room = context - promptTokens;
      for (const maxTokens of [room + 1, context - 1].filter((n) => n <= 512)) {
        const r = await post(server, { ...good, max_tokens: maxTokens });
        expectOpenAiError(r, 400, 'context_length_exceeded');
        expect(r.json().error.message).toBe(
          `the prompt is ${promptTokens} tokens (image tokens included) and max_tokens is ${maxTokens}: ${promptTokens + maxTokens} tokens, ` +
            `more than the model's context of ${context}; max_tokens can be at most ${room} for this prompt`,
        );
      }
      const fits = await post(server, { ...good, max_tokens: Math.min(room, 512) });
      expect(fits.status).toBe(200);
      expect(fits.json().usage.prompt_tokens).toBe(promptTokens);
      await expectStillServing();

      // An image whose header passes the server's checks but whose data the engine cannot decode fails alone
      // in its batch; the requests that shared the batch get their answers.
      const brokenPng = new Uint8Array([...pngHeader(64, 64), ...new Uint8Array(100).fill(7)]);
      const before = server.batchSizes.length;
      const pair = [caption, other];
      const [broken, ...others] = await behindBusyEngine([withImage(brokenPng), ...pair.map((c) => caseBody(c))]);
      expectOpenAiError(broken!, 400, 'invalid_image');
      expect(others.map((r) => r.json().choices[0].message.content)).toEqual(pair.map((c) => greedyAnswerOf(c)));
      expect(server.batchSizes.slice(before)).toEqual([1, 3, 2]);

      await expect(client.chat.completions.create({ ...good, model: 'nope' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      // A streamed request that fails before its first token gets a plain JSON error, not an event stream.
      await expect(client.chat.completions.create({ ...withImage(brokenPng), stream: true })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      await expectStillServing();
    });

    it('refuses an image URL on a private address without the allow setting, and keeps serving', async () => {
      const strict = await Blip2Server.start(engine, { port: 0 });
      try {
        const c = captions.at(-1) ?? caption;
        const before = images.requests.length;
        for (const url of [`${images.url}/${c.image_file}`, 'http://10.0.0.1/cell.png', 'http://169.254.169.254/latest/meta-data']) {
          expectOpenAiError(await post(strict, caseBody(c, url)), 400, 'image_url_not_allowed');
        }
        expect(images.requests.length).toBe(before);
        await expectStillServing(strict);
      } finally {
        await strict.close();
      }
    });

    it('turns a chat with an earlier assistant turn into the BLIP-2 chat prompt and generates its tokens', async () => {
      const c = caption;
      const turns = [{ question: 'what is it?', answer: 'a cat' }];
      const question = 'why?';
      const maxTokens = 8;
      const r = await client.chat.completions.create({
        model: MODEL,
        max_tokens: maxTokens,
        messages: [
          { role: 'system', content: 'You are a helpful assistant.' },
          userMessage(dataUrlOf(fx, c), turns[0]!.question),
          { role: 'assistant', content: turns[0]!.answer },
          { role: 'user', content: question },
        ],
      });
      const served = engine.calls.at(-1)!;
      const prompt = chatPrompt(turns, question);
      expect(served.prompts).toEqual([prompt]);

      // The reference: the processor's ids for that prompt through the model's own generate.
      const { model, processor, generationConfig } = engine.inner.pipeline;
      const batch = await processor.process({ images: [imageBytesOf(fx, c)], text: [prompt] });
      const pixels = Tensor.from(model.gpu, batch.pixelValues, batch.pixelShape);
      let reference: number[];
      try {
        const out = await model.generate({
          pixel_values: pixels,
          input_ids: batch.inputIds,
          attention_mask: batch.attentionMask,
          generation_config: resolveGenerationConfig(generationConfig, { max_new_tokens: maxTokens }),
        });
        reference = out.new_tokens[0]!.filter((id) => !generationConfig.eos_token_id.includes(id));
      } finally {
        pixels.dispose();
      }
      expect(reference.length).toBeGreaterThan(0);
      expect(served.results[0]!.sequences[0]!.tokenIds).toEqual(reference);
      expect(r.choices[0]!.message.content).toBe(processor.decode(reference, { skipSpecialTokens: true }).trim());
      expect(r.usage).toMatchObject({ prompt_tokens: batch.inputIds[0]!.length, completion_tokens: reference.length });
    });
  });
}
