/**
 * A deterministic stand-in for the model, for tests of the CLI and the server: the answer is a function of
 * the decoded pixels, the prompt and the parameters that matter, never of the batch it ran in. Tokens are
 * streamed step by step across the batch, like a batched decoder does.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  EngineInputError,
  checkGenerationParams,
  type Engine,
  type EngineFactory,
  type GenerateOptions,
  type GenerateRequest,
  type GenerateResult,
  type ImageInput,
} from './engine.js';
import { ImageInputError, loadImage } from '../processing/index.js';
import { contextOverflow } from './context-limit.js';
import { IncrementalDetokenizer } from './text-stream.js';

const EOS = 0;
const WORDS = [
  '', 'a', 'the', 'cat', 'dog', 'sitting', 'on', 'in', 'with', 'red', 'blue', 'green', 'small', 'large', 'photo',
  'of', 'man', 'woman', 'table', 'chair', 'couch', 'beach', 'street', 'tree', 'house', 'car', 'two', 'black',
  'white', 'and', 'next', 'to', 'is', 'yes', 'no', 'field', 'window', 'sky', 'water', 'bird', 'flower', 'book',
  'playing', 'looking', 'at', 'camera', 'grass', 'snow', 'city', 'night',
];
/** The model reads this many image tokens plus BOS before the prompt, as BLIP-2 OPT-2.7B does. */
const IMAGE_AND_BOS_TOKENS = 33;

export interface FakeEngineOptions {
  modelId?: string;
  /** Pause between decoding steps, to make batching and streaming observable. */
  tokenDelayMs?: number;
  contextLength?: number;
}

function fnv1a(h: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  return h;
}

function hashParts(parts: readonly (Uint8Array | string | number)[]): number {
  const enc = new TextEncoder();
  let h = 0x811c9dc5;
  for (const p of parts) {
    const bytes = typeof p === 'string' ? enc.encode(p) : typeof p === 'number' ? enc.encode(String(p)) : p;
    h = fnv1a(h, bytes);
    h = fnv1a(h, new Uint8Array([0xff])); // separator, so ('ab','c') != ('a','bc')
  }
  return h;
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export function fakeDecode(ids: readonly number[]): string {
  return ids.map((id) => (id > 0 && id < WORDS.length ? ` ${WORDS[id]}` : '')).join('');
}

/** Decodes the image with the real decoder (so broken files fail as they would in the model); returns its pixels. */
async function imagePixels(image: ImageInput, index: number): Promise<Uint8Array> {
  try {
    return (await loadImage(image)).data;
  } catch (e) {
    if (e instanceof ImageInputError) throw new EngineInputError(`the image cannot be used: ${e.message}`, index, 'invalid_image');
    throw e;
  }
}

/** Token ids of one choice: deterministic in everything that would change a real model's answer. */
function planTokens(request: GenerateRequest, bytes: Uint8Array, choice: number): number[] {
  const p = request.params;
  const sampling = p.temperature > 0;
  const key: (Uint8Array | string | number)[] = [bytes, request.prompt, p.numBeams, p.repetitionPenalty];
  if (sampling) key.push(p.seed, p.temperature, p.topP, p.topK);
  if (sampling || p.numBeams > 1) key.push(choice);
  const next = prng(hashParts(key));
  const length = 3 + (next() % 10);
  const ids: number[] = [];
  for (let i = 0; i < length; i++) ids.push(1 + (next() % (WORDS.length - 1)));
  ids.push(EOS);
  return ids;
}

interface Track {
  request: number;
  choice: number;
  plan: number[];
  detok: IncrementalDetokenizer;
  done: boolean;
  finishReason: 'stop' | 'length';
}

export class FakeEngine implements Engine {
  readonly modelId: string;
  readonly contextLength: number;
  /** Sizes of the batches `generate` was called with, in order. */
  readonly batchSizes: number[] = [];
  private readonly tokenDelayMs: number;

  constructor(options: FakeEngineOptions = {}) {
    this.modelId = options.modelId ?? 'fake/blip2';
    this.tokenDelayMs = options.tokenDelayMs ?? 0;
    this.contextLength = options.contextLength ?? 2048;
  }

  async countTokens(text: string): Promise<number> {
    return text.match(/[\p{L}\p{N}]+|[^\p{L}\p{N}\s]/gu)?.length ?? 0;
  }

  async promptTokens(prompt: string): Promise<number> {
    return IMAGE_AND_BOS_TOKENS + (await this.countTokens(prompt));
  }

  async generate(requests: readonly GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    this.batchSizes.push(requests.length);
    const tracks: Track[] = [];
    const promptTokens: number[] = [];
    for (const [r, req] of requests.entries()) {
      const problem = checkGenerationParams(req.params);
      if (problem) throw new EngineInputError(problem, r, 'invalid_parameters');
      const bytes = await imagePixels(req.image, r);
      const prompt = await this.promptTokens(req.prompt);
      const overflow = contextOverflow(prompt, req.params.maxNewTokens, this.contextLength, 'the new-token limit');
      if (overflow) throw new EngineInputError(overflow, r, 'context_length_exceeded');
      promptTokens.push(prompt);
      for (let c = 0; c < req.params.n; c++) {
        const detok = new IncrementalDetokenizer(fakeDecode, req.params.stop);
        tracks.push({ request: r, choice: c, plan: planTokens(req, bytes, c), detok, done: false, finishReason: 'length' });
      }
    }
    for (let step = 0; tracks.some((t) => !t.done); step++) {
      options.signal?.throwIfAborted();
      for (const t of tracks) {
        if (t.done) continue;
        const req = requests[t.request]!;
        if (req.signal?.aborted) {
          t.done = true;
          continue;
        }
        const id = t.plan[step]!;
        if (id === EOS) {
          t.finishReason = 'stop';
          t.done = true;
        } else {
          const text = t.detok.push(id);
          options.onToken?.({ request: t.request, choice: t.choice, tokenId: id, text });
          if (t.detok.stopped) t.finishReason = 'stop';
          t.done = t.detok.stopped || t.detok.tokenIds.length >= req.params.maxNewTokens;
        }
        // Text held back as a possible stop-string start is final once the sequence ends.
        const rest = t.done ? t.detok.finish() : '';
        if (rest) options.onToken?.({ request: t.request, choice: t.choice, tokenId: -1, text: rest });
      }
      await new Promise<void>((resolve) => (this.tokenDelayMs > 0 ? setTimeout(resolve, this.tokenDelayMs) : setImmediate(resolve)));
    }
    options.signal?.throwIfAborted();
    return requests.map((_, r) => {
      const sequences = tracks
        .filter((t) => t.request === r)
        .map((t) => ({ tokenIds: [...t.detok.tokenIds], text: t.detok.text(), finishReason: t.finishReason }));
      const completionTokens = sequences.reduce((s, q) => s + q.tokenIds.length, 0);
      return { sequences, promptTokens: promptTokens[r]!, completionTokens };
    });
  }

  async dispose(): Promise<void> {}
}

/**
 * Engine-module entry point (`BLIP2_ENGINE_MODULE=.../fake-engine.js`), used by the CLI tests. It checks that the
 * folder holds a BLIP-2 config, like the real engine would, and reports load progress.
 */
export const createEngine: EngineFactory = async (options) => {
  const configPath = join(options.modelDir, 'config.json');
  let config: { model_type?: unknown };
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as { model_type?: unknown };
  } catch (e) {
    throw new Error(`cannot read ${configPath}: ${(e as Error).message}`);
  }
  if (config.model_type !== 'blip-2') throw new Error(`${configPath}: model_type is ${JSON.stringify(config.model_type)}, expected "blip-2"`);
  for (let i = 1; i <= 4; i++) options.onProgress?.({ phase: 'load', label: `part ${i}`, done: i, total: 4 });
  // Tests slow the fake down and shrink its context through the environment, because the CLI gives them no other way in.
  const delay = Number(process.env.BLIP2_FAKE_TOKEN_DELAY_MS ?? 0);
  const context = Number(process.env.BLIP2_FAKE_CONTEXT_LENGTH ?? 0);
  return new FakeEngine({
    modelId: options.modelId,
    tokenDelayMs: Number.isFinite(delay) ? delay : 0,
    contextLength: Number.isInteger(context) && context > 0 ? context : undefined,
  });
};
