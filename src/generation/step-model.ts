/**
 * What the search loops drive: a language model with a KV cache that runs the prompt once, then one token
 * per row per step, and can reorder (or repeat) its rows when beams are chosen. Tests substitute a fake.
 */
import { embedding } from '../kernels/embedding.js';
import type { OPTForCausalLM } from '../model/opt.js';
import type { OPTKVCache } from '../model/opt-cache.js';
import { OPTDecodeSession, type OPTDecodeOptions } from '../model/opt-decode.js';
import { Tensor, tidy, type DType } from '../tensor.js';
import type { DeviceDecoder } from './device-loop.js';

export interface StepModel {
  readonly vocabSize: number;
  /** Rows after prefill (the prompts). */
  readonly batch: number;
  /** Runs the prompts; logits of each row's last position, [batch, V] f32. The caller disposes them. */
  prefill(): Tensor;
  /** Appends one token per current row (attended to) and returns the next logits, [rows, V] f32. */
  step(tokens: readonly number[]): Tensor;
  /** Row i becomes old row parents[i]; the row count may change (expanding prompts into beams or samples). */
  reorder(parents: readonly number[]): void;
  /**
   * Optional: decoding on the device from here on (after prefill and any reorder), the rows' input_ids so far
   * given for the history the device-side processors read; null when the model cannot.
   */
  deviceDecoder?(histories: readonly (readonly number[])[]): DeviceDecoder | null;
  dispose(): void;
}

/** True when `parents` keeps every row where it is. */
export function isIdentity(parents: readonly number[], rows: number): boolean {
  return parents.length === rows && parents.every((p, i) => p === i);
}

/** Rows of a [R, V] tensor picked (and repeated) by `parents`: a new [parents.length, V] f32 tensor. */
export function gatherRows(t: Tensor, parents: readonly number[]): Tensor {
  return tidy(() => embedding(Tensor.from(t.gpu, Int32Array.from(parents), [parents.length], 'i32'), t, { outDtype: 'f32' }));
}

/** How the prompt enters the language model: it fills the cache and returns the last position's logits. */
export interface PromptRunner {
  readonly batch: number;
  /** Cache rows the prompt fills (input_ids length, plus the prepended queries in the legacy layout). */
  readonly positions: number;
  run(cache: OPTKVCache): { logits: Tensor; attention_mask: number[][] };
}

/** How CausalLMStepModel runs its steps. */
export interface CausalLMStepOptions extends OPTDecodeOptions {
  /**
   * Replay a captured decode step that reads its tokens, positions and lengths from device buffers (default), or
   * record OPTForCausalLM.call anew at every step with host-built masks and positions (the reference path, also
   * taken whenever a module of the language model has a forward hook: hooks run at every step there).
   */
  replay?: boolean;
}

/** The real thing: OPTForCausalLM with its preallocated KV cache. */
export class CausalLMStepModel implements StepModel {
  private cache: OPTKVCache | null = null;
  private mask: number[][] = [];
  private session: OPTDecodeSession | null = null;
  private readonly options: CausalLMStepOptions;

  constructor(
    private readonly lm: OPTForCausalLM,
    private readonly prompt: PromptRunner,
    /** Tokens the loop may append (sizes the cache so it never grows). */
    private readonly maxNewTokens: number,
    private readonly cacheDtype: DType,
    options: CausalLMStepOptions = {},
  ) {
    // Forward hooks expect to run at every step: a captured step would run them once, at capture.
    this.options = lm.hasForwardHooks() ? { ...options, replay: false } : options;
    const limit = lm.config.max_position_embeddings;
    if (prompt.positions + maxNewTokens > limit) {
      throw new RangeError(`the prompt (${prompt.positions} positions) plus ${maxNewTokens} new tokens exceeds the model's ${limit} positions; lower max_new_tokens`);
    }
  }

  get vocabSize(): number {
    return this.lm.config.vocab_size;
  }

  get batch(): number {
    return this.prompt.batch;
  }

  prefill(): Tensor {
    if (this.cache) throw new Error('prefill runs once');
    const gpu = this.lm.lm_head.weight.value.gpu;
    this.cache = this.lm.create_cache(gpu, this.prompt.batch, this.prompt.positions + this.maxNewTokens, this.cacheDtype);
    const { logits, attention_mask } = this.prompt.run(this.cache);
    this.mask = attention_mask.map((r) => [...r]);
    return logits;
  }

  step(tokens: readonly number[]): Tensor {
    const cache = this.requireCache();
    if (tokens.length !== cache.batch) throw new RangeError(`step: ${tokens.length} tokens for ${cache.batch} rows`);
    if (this.options.replay !== false) {
      const logits = this.openSession([]).step(tokens).ref();
      for (const row of this.mask) row.push(1);
      cache.length++;
      return logits;
    }
    for (const row of this.mask) row.push(1);
    const V = this.vocabSize;
    return tidy(() => {
      const input_ids = Tensor.from(cache.gpu, Int32Array.from(tokens), [tokens.length, 1], 'i32');
      const out = this.lm.call({ input_ids, attention_mask: this.mask, past_key_values: cache, logits_to_keep: 1 });
      return out.logits.reshape([tokens.length, V]);
    });
  }

  deviceDecoder(histories: readonly (readonly number[])[]): DeviceDecoder | null {
    if (this.options.replay === false) return null;
    if (this.session) throw new Error('deviceDecoder: decoding already started');
    const session = this.openSession(histories);
    return { state: session.state, capture: (after) => session.capture(after) };
  }

  /** The decode session of the current rows, created on first use (after prefill and any expanding reorder). */
  private openSession(histories: readonly (readonly number[])[]): OPTDecodeSession {
    if (this.session) return this.session;
    const cache = this.requireCache();
    if (histories.length !== 0 && histories.length !== cache.batch) throw new RangeError(`${histories.length} histories for ${cache.batch} rows`);
    const rows = this.mask.map((m, r) => ({
      ids: histories[r] ?? [],
      mask: m,
      // OPT's position of the next token: the real tokens so far (cumsum of the mask), plus its offset of 2.
      position: m.reduce((a, b) => a + b, 0) + 2,
      length: cache.length,
    }));
    const histWidth = Math.max(0, ...histories.map((h) => h.length)) + this.maxNewTokens;
    this.session = new OPTDecodeSession(this.lm, cache, rows, histWidth, this.options);
    return this.session;
  }

  reorder(parents: readonly number[]): void {
    const cache = this.requireCache();
    if (isIdentity(parents, cache.batch)) return;
    if (this.session && parents.length === cache.batch) {
      this.session.reorder(parents); // in place: the captured step's buffers stay valid
    } else {
      this.closeSession();
      this.cache = cache.select(parents);
      cache.dispose(); // the pool destroys its buffers only after the recorded gather is submitted
    }
    this.mask = parents.map((p) => [...this.mask[p]!]);
  }

  dispose(): void {
    this.closeSession();
    this.cache?.dispose();
    this.cache = null;
  }

  private closeSession(): void {
    this.session?.dispose();
    this.session = null;
  }

  private requireCache(): OPTKVCache {
    if (!this.cache) throw new Error('prefill first');
    return this.cache;
  }
}
