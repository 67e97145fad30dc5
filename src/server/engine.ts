/**
 * The small, model-agnostic interface between the product layer (CLI, HTTP server) and a captioning /
 * VQA model. The real implementation wraps the BLIP-2 processor and `generate`; tests use `FakeEngine`.
 */

import type { RawPixels } from '../processing/index.js';
import { GENERATION_RANGES, inRange, rangeMessage, type RangedParam } from './generation-ranges.js';

/** Encoded image bytes (PNG, JPEG, ...) or decoded pixels (gray, gray+alpha, RGB or RGBA). */
export type ImageInput = Uint8Array | RawPixels;

export interface GenerationParams {
  /** Upper bound on new tokens per returned sequence. */
  maxNewTokens: number;
  /** 1 = no beam search. */
  numBeams: number;
  /** 0 = greedy (or plain beam search); > 0 samples with this temperature. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 disables it. */
  topP: number;
  /** Keep only the k most likely tokens; 0 disables it. */
  topK: number;
  /** Seed of the sampler; the same seed gives the same result. */
  seed: number;
  /** Generation ends before any of these strings; the returned text does not contain it. */
  stop: readonly string[];
  /** 1 = off; HF semantics (divide positive logits, multiply negative ones, for seen tokens). */
  repetitionPenalty: number;
  /** Sequences to return; at most `numBeams` with beam search. */
  n: number;
}

export interface GenerateRequest {
  image: ImageInput;
  /** Already in BLIP-2 form (`"Question: ... Answer:"`), or empty for a caption. */
  prompt: string;
  params: GenerationParams;
  /** When aborted, the engine may stop working on this request; its result is then ignored. */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length';

export interface GeneratedSequence {
  /** New tokens only (no prompt, no end-of-sequence token). */
  tokenIds: number[];
  text: string;
  finishReason: FinishReason;
}

export interface GenerateResult {
  /** `params.n` sequences, best first. */
  sequences: GeneratedSequence[];
  /** Tokens the model read before generating (image query tokens, BOS and prompt). */
  promptTokens: number;
  /** Sum of `tokenIds.length` over the sequences. */
  completionTokens: number;
}

/**
 * One streamed piece of a sequence (engines may stream nothing, e.g. under beam search; callers then use
 * the final text). `text` is the new text (may be empty, e.g. inside a UTF-8 character or
 * the possible start of a stop string). `tokenId` is -1 for text released when the sequence ends (characters
 * held back until then). The concatenated `text`s of a sequence equal its final `text`.
 */
export interface TokenEvent {
  request: number;
  choice: number;
  tokenId: number;
  text: string;
}

export interface GenerateOptions {
  onToken?: (event: TokenEvent) => void;
  /** Aborts the whole batch: `generate` rejects with an `AbortError`. */
  signal?: AbortSignal;
}

/** A request ready to join a decode batch: its image decoded and its settings checked (engine-specific). */
export interface PreparedRequest {
  /** Sequences it decodes at once (a sampled request's n choices; 1 otherwise). */
  readonly rows: number;
}

/** Where a decode batch reports one request's tokens and its result. */
export interface RequestSink {
  onToken(event: Omit<TokenEvent, 'request'>): void;
  onDone(result: GenerateResult): void;
}

/**
 * Continuous batching: a running decode batch that requests join and leave between decode steps. The
 * scheduler prepares each request as it arrives, joins prepared requests while sequences fit, and steps.
 */
export interface DecodeBatch {
  /** Sequences that can still join. */
  readonly freeRows: number;
  /** Requests decoding. */
  readonly runningRequests: number;
  /** Whether `request` can join (beam search cannot: it runs as a whole batch through `Engine.generate`). */
  accepts(request: GenerateRequest): boolean;
  /** Per-request work before joining (decoding the image, checks): bad input rejects with an EngineInputError. */
  prepare(request: GenerateRequest): Promise<PreparedRequest>;
  /** Starts the requests (prompt pass, first token); a request that ends at once reports its result. */
  join(entries: readonly { prepared: PreparedRequest; sink: RequestSink }[]): Promise<void>;
  /** One token for every running sequence; finished requests report their results and leave. */
  step(): Promise<void>;
  /** The request leaves before the next join or step (its sink hears nothing more). */
  cancel(sink: RequestSink): void;
  /** Frees the batch's GPU memory. */
  dispose(): void;
}

/** Memory an engine holds, as /health reports it. */
export interface EngineMemory {
  /** GPU bytes in live tensors (weights, caches, work in progress). */
  gpuLiveBytes: number;
  gpuPeakBytes: number;
  /** GPU bytes kept in the buffer pool for reuse. */
  gpuPooledBytes: number;
}

export interface Engine {
  /** The model's name as clients see it (hub id or folder name). */
  readonly modelId: string;
  /** Most tokens (prompt + new) a sequence may hold; undefined when the engine does not say. */
  readonly contextLength?: number;
  /** Tokens of `text` by the model's tokenizer, without special tokens. */
  countTokens(text: string): Promise<number>;
  /**
   * Tokens the model reads for `prompt`: image query tokens, BOS and the prompt (what `GenerateResult.promptTokens`
   * reports), so that callers can check `prompt + max new tokens` against `contextLength` before generating.
   */
  promptTokens(prompt: string): Promise<number>;
  /**
   * Runs a batch; results come back in request order. A request whose input is bad rejects the batch with an
   * `EngineInputError` that names its index, so the caller can retry the others.
   */
  generate(requests: readonly GenerateRequest[], options?: GenerateOptions): Promise<GenerateResult[]>;
  /** Frees GPU memory and files. */
  dispose(): Promise<void>;
  /** A continuous decode batch of `slots` sequences; engines without one run whole batches only. */
  createDecodeBatch?(slots: number): DecodeBatch;
  /** Resolves when the engine can no longer run (its GPU device was lost); never for a healthy engine. */
  readonly lost?: Promise<EngineLostError>;
  memory?(): EngineMemory;
}

/** Progress of a long step (weight loading), for progress bars. */
export interface ProgressEvent {
  phase: 'download' | 'load';
  /** What is being worked on (file or tensor name). */
  label: string;
  done: number;
  total: number;
  /** How done/total count (default items). */
  unit?: 'bytes' | 'items';
}

export interface EngineOptions {
  /** A local model folder in HF layout (already downloaded). */
  modelDir: string;
  /** The name clients see. */
  modelId: string;
  dtype: 'f16' | 'f32';
  /** Quantize the vision encoder's and OPT decoder's Linear weights to q8 or q4 (docs/quantization.md). */
  quantize?: 'q8' | 'q4';
  onProgress?: (event: ProgressEvent) => void;
}

/** What an engine module exports (the default BLIP-2 engine, or a test double chosen by `BLIP2_ENGINE_MODULE`). */
export type EngineFactory = (options: EngineOptions) => Promise<Engine>;

/** Bad input for one request (an image that cannot be decoded, ...): the client's fault, not the engine's. */
export class EngineInputError extends Error {
  override readonly name = 'EngineInputError';
  constructor(
    message: string,
    /** Index of the offending request in the batch. */
    readonly requestIndex: number,
    /** Machine-readable reason, e.g. 'invalid_image'. */
    readonly code = 'invalid_input',
  ) {
    super(message);
  }
}

/**
 * The engine cannot run any more (its GPU device was lost, e.g. a driver reset). Requests fail with it; the
 * server reports it on /health and `blip2 serve` exits so that a supervisor starts a fresh process.
 */
export class EngineLostError extends Error {
  override readonly name = 'EngineLostError';
}

export function defaultGenerationParams(overrides: Partial<GenerationParams> = {}): GenerationParams {
  return {
    maxNewTokens: 30,
    numBeams: 1,
    temperature: 0,
    topP: 1,
    topK: 0,
    seed: 0,
    stop: [],
    repetitionPenalty: 1,
    n: 1,
    ...overrides,
  };
}

/** Checks the parameters' ranges (`generation-ranges.ts`); returns an error message, or null when they are valid. */
export function checkGenerationParams(p: GenerationParams): string | null {
  for (const key of Object.keys(GENERATION_RANGES) as RangedParam[]) {
    if (!inRange(GENERATION_RANGES[key], p[key])) return rangeMessage(key, GENERATION_RANGES[key], String(p[key]));
  }
  if (p.numBeams > 1 && p.n > p.numBeams) return `n (${p.n}) cannot exceed numBeams (${p.numBeams})`;
  if (p.numBeams === 1 && p.temperature === 0 && p.n > 1) {
    return `n > 1 needs sampling (temperature > 0) or beam search (numBeams >= n); greedy decoding has one answer`;
  }
  if (p.stop.some((s) => typeof s !== 'string' || s.length === 0)) return 'stop strings must be non-empty';
  return null;
}
