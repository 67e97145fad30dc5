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
  type DecodeBatch,
  type Engine,
  type EngineFactory,
  type GenerateOptions,
  type GenerateRequest,
  type GenerateResult,
  type ImageInput,
  type PreparedRequest,
  type RequestSink,
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

/** A request checked and its image decoded, as `generate` and the decode batch start from. */
interface FakePrepared extends PreparedRequest {
  readonly request: GenerateRequest;
  readonly bytes: Uint8Array;
  readonly promptTokens: number;
}

function newTracks(p: FakePrepared, request: number): Track[] {
  return Array.from({ length: p.request.params.n }, (_, choice) => ({
    request,
    choice,
    plan: planTokens(p.request, p.bytes, choice),
    detok: new IncrementalDetokenizer(fakeDecode, p.request.params.stop),
    done: false,
    finishReason: 'length' as const,
  }));
}

/** Decodes the next token of a track at `step`; emits its text (and any held-back text when it ends). */
function advance(t: Track, step: number, maxNewTokens: number, emit: (tokenId: number, text: string) => void): void {
  const id = t.plan[step]!;
  if (id === EOS) {
    t.finishReason = 'stop';
    t.done = true;
  } else {
    emit(id, t.detok.push(id));
    if (t.detok.stopped) t.finishReason = 'stop';
    t.done = t.detok.stopped || t.detok.tokenIds.length >= maxNewTokens;
  }
  // Text held back as a possible stop-string start is final once the sequence ends.
  const rest = t.done ? t.detok.finish() : '';
  if (rest) emit(-1, rest);
}

function resultOf(tracks: readonly Track[], promptTokens: number): GenerateResult {
  const sequences = tracks.map((t) => ({ tokenIds: [...t.detok.tokenIds], text: t.detok.text(), finishReason: t.finishReason }));
  return { sequences, promptTokens, completionTokens: sequences.reduce((s, q) => s + q.tokenIds.length, 0) };
}

export class FakeEngine implements Engine {
  readonly modelId: string;
  readonly contextLength: number;
  /** Sizes of the batches `generate` was called with, in order. */
  readonly batchSizes: number[] = [];
  readonly tokenDelayMs: number;

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

  /** Checks a request and decodes its image; bad input is an EngineInputError naming `index`. */
  async prepare(req: GenerateRequest, index: number): Promise<FakePrepared> {
    const problem = checkGenerationParams(req.params);
    if (problem) throw new EngineInputError(problem, index, 'invalid_parameters');
    const bytes = await imagePixels(req.image, index);
    const promptTokens = await this.promptTokens(req.prompt);
    const overflow = contextOverflow(promptTokens, req.params.maxNewTokens, this.contextLength, 'the new-token limit');
    if (overflow) throw new EngineInputError(overflow, index, 'context_length_exceeded');
    return { rows: req.params.n, request: req, bytes, promptTokens };
  }

  async generate(requests: readonly GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    this.batchSizes.push(requests.length);
    const prepared: FakePrepared[] = [];
    for (const [r, req] of requests.entries()) prepared.push(await this.prepare(req, r));
    const tracks = prepared.flatMap((p, r) => newTracks(p, r));
    for (let step = 0; tracks.some((t) => !t.done); step++) {
      options.signal?.throwIfAborted();
      for (const t of tracks) {
        if (t.done) continue;
        const req = requests[t.request]!;
        if (req.signal?.aborted) {
          t.done = true;
          continue;
        }
        advance(t, step, req.params.maxNewTokens, (tokenId, text) => options.onToken?.({ request: t.request, choice: t.choice, tokenId, text }));
      }
      await this.pause();
    }
    options.signal?.throwIfAborted();
    return requests.map((_, r) => resultOf(tracks.filter((t) => t.request === r), prepared[r]!.promptTokens));
  }

  /** A continuous batch over the same token plans: a request's answer does not depend on when it joined. */
  createDecodeBatch(slots: number): DecodeBatch {
    return new FakeDecodeBatch(this, slots);
  }

  /** The pause between decoding steps. */
  pause(): Promise<void> {
    return new Promise<void>((resolve) => (this.tokenDelayMs > 0 ? setTimeout(resolve, this.tokenDelayMs) : setImmediate(resolve)));
  }

  async dispose(): Promise<void> {}
}

interface Running {
  prepared: FakePrepared;
  sink: RequestSink;
  tracks: Track[];
  step: number;
}

class FakeDecodeBatch implements DecodeBatch {
  private readonly running: Running[] = [];

  constructor(
    private readonly engine: FakeEngine,
    private readonly slots: number,
  ) {}

  get freeRows(): number {
    return this.slots - this.running.reduce((n, r) => n + r.tracks.filter((t) => !t.done).length, 0);
  }

  get runningRequests(): number {
    return this.running.length;
  }

  accepts(request: GenerateRequest): boolean {
    return request.params.numBeams === 1;
  }

  prepare(request: GenerateRequest): Promise<FakePrepared> {
    return this.engine.prepare(request, 0);
  }

  async join(entries: readonly { prepared: PreparedRequest; sink: RequestSink }[]): Promise<void> {
    for (const { prepared, sink } of entries) {
      const p = prepared as FakePrepared;
      this.running.push({ prepared: p, sink, tracks: newTracks(p, 0), step: 0 });
    }
    // The first token comes with the prompt pass.
    this.advanceAll(this.running.slice(-entries.length));
  }

  async step(): Promise<void> {
    await this.engine.pause();
    this.advanceAll([...this.running]);
  }

  cancel(sink: RequestSink): void {
    const i = this.running.findIndex((r) => r.sink === sink);
    if (i >= 0) this.running.splice(i, 1);
  }

  dispose(): void {
    this.running.length = 0;
  }

  private advanceAll(group: readonly Running[]): void {
    for (const r of group) {
      for (const t of r.tracks) {
        if (!t.done) advance(t, r.step, r.prepared.request.params.maxNewTokens, (tokenId, text) => r.sink.onToken({ choice: t.choice, tokenId, text }));
      }
      r.step++;
      if (r.tracks.every((t) => t.done)) {
        this.cancel(r.sink);
        r.sink.onDone(resultOf(r.tracks, r.prepared.promptTokens));
      }
    }
  }
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
