/** Settings of the HTTP server, with the defaults `blip2 serve` uses. */
import type { Resolver } from './url-policy.js';

export interface ServerLimits {
  /** Largest request body (base64 images make bodies big). */
  maxBodyBytes: number;
  /** Largest image file, from a data URL or fetched. */
  maxImageBytes: number;
  /** Largest width x height. */
  maxImagePixels: number;
  /** Longest prompt in tokens (the conversation text, without image tokens). */
  maxPromptTokens: number;
  /** Largest max_tokens a client may ask for. */
  maxTokens: number;
  /** max_tokens when a client sends none. */
  defaultMaxTokens: number;
  /** Largest n. */
  maxN: number;
  /** A request that takes longer (queue + generation) fails with 503. */
  requestTimeoutMs: number;
  imageFetchTimeoutMs: number;
  maxRedirects: number;
}

export interface ServerSettings {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /**
   * Model ids clients may use (vLLM's `--served-model-name`); the first is the one `/v1/models` lists first and
   * responses carry. Default: the engine's `modelId`.
   */
  servedModelNames?: readonly string[];
  /** When set, every /v1 request needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /**
   * `continuous`: requests join and leave a running decode batch between steps (when the engine has one);
   * `static`: requests that wait together run as one batch to its end.
   */
  batching: 'continuous' | 'static';
  /** Most requests in one engine batch (with continuous batching: most sequences decoding at once). */
  maxBatch: number;
  /** Engine batches that may run at the same time. */
  maxConcurrentBatches: number;
  /** Requests that may wait; more get 429. */
  maxQueue: number;
  limits: ServerLimits;
  /** Fetch image URLs that resolve to loopback/private/link-local addresses (tests, trusted networks). */
  allowPrivateImageUrls: boolean;
  resolver?: Resolver;
  /** On shutdown, how long in-flight requests may take before they are failed. */
  shutdownGraceMs: number;
  /** One line per request; silent when absent. */
  log?: (line: string) => void;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 32 * 1024 * 1024,
  maxImageBytes: 20 * 1024 * 1024,
  maxImagePixels: 40_000_000,
  maxPromptTokens: 512,
  maxTokens: 512,
  defaultMaxTokens: 30,
  maxN: 8,
  requestTimeoutMs: 300_000,
  imageFetchTimeoutMs: 15_000,
  maxRedirects: 5,
};

/** Settings as callers give them: anything left out takes its default. */
export type ServerSettingsInput = Partial<Omit<ServerSettings, 'limits'>> & { limits?: Partial<ServerLimits> };

export function defaultServerSettings(overrides: ServerSettingsInput = {}): ServerSettings {
  return {
    host: '127.0.0.1',
    port: 8000,
    batching: 'continuous',
    maxBatch: 8,
    maxConcurrentBatches: 1,
    maxQueue: 64,
    allowPrivateImageUrls: false,
    shutdownGraceMs: 30_000,
    ...overrides,
    limits: { ...DEFAULT_LIMITS, ...overrides.limits },
  };
}
