import { describe, expect, it } from 'vitest';
import { parseChatRequest } from '../../src/server/chat-request.js';
import { defaultGenerationParams, EngineInputError, type GenerateRequest } from '../../src/server/engine.js';
import { FakeEngine, fakeDecode } from '../../src/server/fake-engine.js';
import { decodeDataUrl } from '../../src/server/image-source.js';
import { QueueFullError, Scheduler, SchedulerClosedError } from '../../src/server/scheduler.js';
import { IncrementalDetokenizer } from '../../src/server/text-stream.js';
import { CAMERA, CHELSEA, dataUrl } from './support.js';

describe('data URLs', () => {
  it('decodes base64 images and refuses everything else clearly', () => {
    expect(decodeDataUrl(dataUrl(CHELSEA), 1e6)).toEqual(CHELSEA);
    expect(() => decodeDataUrl('data:image/png;base64,ab$d', 1e6)).toThrow(/not valid base64/);
    expect(() => decodeDataUrl('data:image/png,%89PNG', 1e6)).toThrow(/base64/);
    expect(() => decodeDataUrl('data:text/plain;base64,aGVsbG8=', 1e6)).toThrow(/not an image type/);
    expect(() => decodeDataUrl(dataUrl(CHELSEA), 1000)).toThrow(/larger than the limit/);
    expect(() => decodeDataUrl('data:image/png;base64,', 1000)).toThrow(/empty/);
  });
});

describe('incremental detokenizer', () => {
  const vocab = ['', ' a', ' cat', ' on', ' the', ' mat', '\uFFFD'];
  const decode = (ids: readonly number[]) => ids.map((i) => vocab[i]).join('');

  it('streams deltas that add up to the text, without the leading space', () => {
    const d = new IncrementalDetokenizer(decode);
    const parts = [1, 2, 3].map((id) => d.push(id));
    parts.push(d.finish());
    expect(parts.join('')).toBe('a cat on');
    expect(d.text()).toBe('a cat on');
    expect(parts[0]).toBe('a');
  });

  it('cuts before a stop string and never leaks its start', () => {
    const d = new IncrementalDetokenizer(decode, [' the m']);
    const parts = [1, 2, 3, 4].map((id) => d.push(id));
    expect(parts.join('')).toBe('a cat on'); // ' the' may begin the stop string: held back
    expect(d.push(5)).toBe('');
    expect(d.stopped).toBe(true);
    expect(d.finish()).toBe('');
    expect(d.text()).toBe('a cat on');
  });

  it('releases held-back text when the sequence ends without the stop string', () => {
    const d = new IncrementalDetokenizer(decode, [' the m']);
    const parts = [1, 4].map((id) => d.push(id));
    parts.push(d.finish());
    expect(parts.join('')).toBe('a the');
    expect(d.stopped).toBe(false);
  });

  it('holds back a trailing replacement character (half a UTF-8 character)', () => {
    const d = new IncrementalDetokenizer(decode);
    expect(d.push(1)).toBe('a');
    expect(d.push(6)).toBe('');
    expect(d.finish()).toBe('\uFFFD');
  });
});

describe('BLIP-2 prompts and chat requests', () => {
  const limits = { defaultMaxTokens: 30, maxTokens: 100, maxN: 4 };
  const image = { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } };

  it('builds VQA, caption and chat prompts from messages', () => {
    const prompt = (messages: unknown[]) => parseChatRequest({ model: 'm', messages }, limits).prompt;
    expect(prompt([{ role: 'user', content: [image, { type: 'text', text: '  what is this? ' }] }])).toBe('Question: what is this? Answer:');
    expect(prompt([{ role: 'user', content: [image] }])).toBe('');
    expect(
      prompt([
        { role: 'user', content: [image, { type: 'text', text: 'q1' }] },
        { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'q2' },
        { role: 'assistant', content: [{ type: 'text', text: 'a2.' }] },
        { role: 'user', content: [{ type: 'text', text: 'q3' }] },
      ]),
    ).toBe('Question: q1 Answer: a1. Question: q2 Answer: a2. Question: q3 Answer:');
    expect(
      prompt([
        { role: 'user', content: [image] },
        { role: 'assistant', content: 'a cat on a mat' },
        { role: 'user', content: 'what colour?' },
      ]),
    ).toBe('a cat on a mat. Question: what colour? Answer:');
  });

  it('turns messages into one image and a prompt', () => {
    const r = parseChatRequest(
      {
        model: 'm',
        messages: [
          { role: 'system', content: 'ignored' },
          { role: 'user', content: [image, { type: 'text', text: 'what is it?' }] },
          { role: 'assistant', content: 'a dog' },
          { role: 'user', content: 'is it big?' },
        ],
        max_completion_tokens: 7,
        stop: '.',
      },
      limits,
    );
    expect(r.prompt).toBe('Question: what is it? Answer: a dog. Question: is it big? Answer:');
    expect(r.imageUrl).toBe('data:image/png;base64,AAAA');
    expect(r.params).toEqual(defaultGenerationParams({ maxNewTokens: 7, stop: ['.'] }));
    expect(parseChatRequest({ model: 'm', messages: [{ role: 'user', content: [image] }] }, limits).prompt).toBe('');
  });

  it('samples only when asked', () => {
    const base = { model: 'm', messages: [{ role: 'user', content: [image] }] };
    expect(parseChatRequest(base, limits).params.temperature).toBe(0);
    expect(parseChatRequest({ ...base, top_p: 0.9 }, limits).params.temperature).toBe(1);
    expect(parseChatRequest({ ...base, temperature: 0.5, n: 2, seed: 3 }, limits).params).toMatchObject({ temperature: 0.5, n: 2, seed: 3 });
    expect(parseChatRequest({ ...base, num_beams: 3, n: 3 }, limits).params).toMatchObject({ numBeams: 3, n: 3 });
  });

  it.each([
    [{ messages: [] }, 'messages'],
    [{ model: '' }, 'model'],
    [{ messages: [{ role: 'user', content: 'no image' }] }, 'messages'],
    [{ messages: [{ role: 'user', content: [image, image] }] }, 'messages[0].content[1].image_url.url'],
    [{ messages: [{ role: 'user', content: [image] }, { role: 'assistant', content: 'x' }] }, 'messages'],
    [{ messages: [{ role: 'assistant', content: 'x' }, { role: 'user', content: [image] }] }, 'messages[0]'],
    [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
    [{ messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, 'messages[0].content[0].type'],
    [{ messages: [{ role: 'user', content: [image] }, { role: 'assistant', content: 'a' }, { role: 'user', content: '  ' }] }, 'messages'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ max_tokens: 101 }, 'max_tokens'],
    [{ temperature: 3 }, 'temperature'],
    [{ top_p: 0 }, 'top_p'],
    [{ n: 2 }, 'n'],
    [{ n: 5, temperature: 1 }, 'n'],
    [{ num_beams: 2, n: 3 }, 'n'],
    [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ seed: 1.5 }, 'seed'],
    [{ stream: 'yes' }, 'stream'],
    [{ presence_penalty: 1 }, 'presence_penalty'],
    [{ logprobs: true }, 'logprobs'],
    [{ tools: [{ type: 'function' }] }, 'tools'],
  ])('rejects %j (param %s)', (patch, param) => {
    const body = { model: 'm', messages: [{ role: 'user', content: [image] }], ...patch };
    try {
      parseChatRequest(body, limits);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ status: 400, param });
    }
  });
});

describe('scheduler', () => {
  const request = (image: Uint8Array, prompt = ''): GenerateRequest => ({ image, prompt, params: defaultGenerationParams({ maxNewTokens: 6 }) });

  it('runs requests that wait together as one batch and gives the same results as alone', async () => {
    const engine = new FakeEngine({ tokenDelayMs: 5 });
    const scheduler = new Scheduler(engine, { maxBatch: 4, maxConcurrent: 1, maxQueue: 100 });
    const reqs = Array.from({ length: 9 }, (_, i) => request(i % 2 ? CHELSEA : CAMERA, `q${i}`));
    const alone = [];
    for (const r of reqs) alone.push((await engine.generate([r]))[0]);
    const together = await Promise.all(reqs.map((r) => scheduler.submit(r)));
    expect(together).toEqual(alone);
    expect(scheduler.batchSizes).toEqual([4, 4, 1]);
  });

  it('streams tokens to the right job and isolates a bad request', async () => {
    const engine = new FakeEngine();
    const scheduler = new Scheduler(engine, { maxBatch: 8, maxConcurrent: 1, maxQueue: 100 });
    const streamed: string[] = ['', ''];
    const good0 = scheduler.submit(request(CHELSEA), { onToken: (e) => (streamed[0] += e.text) });
    const bad = scheduler.submit(request(new TextEncoder().encode('not an image')));
    const good1 = scheduler.submit(request(CAMERA), { onToken: (e) => (streamed[1] += e.text) });
    await expect(bad).rejects.toBeInstanceOf(EngineInputError);
    const [r0, r1] = await Promise.all([good0, good1]);
    expect(streamed).toEqual([r0.sequences[0]!.text, r1.sequences[0]!.text]);
    expect(scheduler.batchSizes).toEqual([3, 2]);
  });

  it('refuses work when the queue is full or closed, and rejects aborted jobs at once', async () => {
    const engine = new FakeEngine({ tokenDelayMs: 20 });
    const scheduler = new Scheduler(engine, { maxBatch: 1, maxConcurrent: 1, maxQueue: 1 });
    const first = scheduler.submit(request(CHELSEA));
    await new Promise((r) => setTimeout(r, 5));
    const controller = new AbortController();
    const second = scheduler.submit(request(CAMERA), { signal: controller.signal });
    expect(() => scheduler.submit(request(CAMERA))).toThrow(QueueFullError);
    controller.abort(new Error('gone'));
    await expect(second).rejects.toThrow('gone');
    await first;
    await scheduler.close(1000);
    expect(() => scheduler.submit(request(CAMERA))).toThrow(SchedulerClosedError);
  });
});

describe('fake engine', () => {
  it('is deterministic, depends on image and prompt, and respects maxNewTokens', async () => {
    const engine = new FakeEngine();
    const params = defaultGenerationParams({ maxNewTokens: 2 });
    const [a, b, c] = await engine.generate([
      { image: CHELSEA, prompt: '', params },
      { image: CAMERA, prompt: '', params },
      { image: CHELSEA, prompt: 'Question: why? Answer:', params: { ...params, maxNewTokens: 30 } },
    ]);
    expect(a!.sequences[0]!.tokenIds).toHaveLength(2);
    expect(a!.sequences[0]!.finishReason).toBe('length');
    expect(a!.sequences[0]!.text).toBe(fakeDecode(a!.sequences[0]!.tokenIds).trim());
    expect(a!.sequences[0]!.text).not.toBe(b!.sequences[0]!.text);
    expect(c!.sequences[0]!.finishReason).toBe('stop');
    expect(c!.promptTokens).toBe(33 + 6); // Question : why ? Answer :
  });
});
