/**
 * `generate` for BLIP-2 and for its OPT language model alone, mirroring transformers 5: the prompt runs once
 * through the model into a preallocated KV cache (logits of the last position only), then greedy search,
 * sampling or beam search decode token by token.
 */
import type { Blip2ForConditionalGeneration } from '../model/blip2.js';
import type { OPTForCausalLM } from '../model/opt.js';
import type { OPTKVCache } from '../model/opt-cache.js';
import { Tensor, tidy, type DType } from '../tensor.js';
import { beamSearch } from './beam-search.js';
import {
  GenerationConfigError,
  generationConfigFromJson,
  maxLengthFor,
  mergeGenerationOptions,
  validateGenerationConfig,
  type GenerationConfig,
  type GenerationOptions,
} from './config.js';
import { decodeLoop, type DecodeLoopArgs } from './decode-loop.js';
import { CausalLMStepModel, type CausalLMStepOptions, type PromptRunner, type StepModel } from './step-model.js';
import type { DecodeMetrics, OnToken, SearchResult, TokenDecoder } from './types.js';

export interface GenerateCallOptions extends GenerationOptions {
  /** The settings the options apply on top of (the checkpoint's generation config); default: the model config's tokens and HF's defaults. */
  generation_config?: GenerationConfig;
  /** Needed for stop strings and for the text of streamed tokens. */
  tokenizer?: TokenDecoder;
  /** Called for every generated token of every row (greedy and sampling only). */
  onToken?: OnToken;
  /** Return the raw logits of every step (debugging, parity tests). */
  output_step_logits?: boolean;
  /**
   * Storage of the KV cache. f32 (default) stays closest to HF's float32 run; f16 halves the cache's memory
   * and shifts logits by ~1e-3 (on the tiny fixture that flips one greedy token at a 0.04 logit margin).
   */
  kv_cache_dtype?: 'f32' | 'f16';
  /**
   * Decode on the device (default true): every step is a captured program replayed with its inputs in device
   * buffers, and greedy search chooses its tokens there, reading them back asynchronously. false records every
   * step anew on the host and reads each step's choice back before the next (the reference path).
   */
  decode_on_device?: boolean;
  /** Greedy search on the device: steps submitted ahead of the token read-back (default 0 on software adapters, 2 on GPUs). */
  decode_lookahead?: number;
  /** Filled with the decode loop's measurements (benchmarks). */
  decode_metrics?: DecodeMetrics;
}

export interface Blip2GenerateArgs extends GenerateCallOptions {
  /** [B, 3, H, W] f32 from the image processor. */
  pixel_values: Tensor;
  /**
   * [B, L] prompt ids, left-padded (`<image>` x num_query_tokens + BOS + text, as Blip2Processor builds them).
   * Omitted: `[<image>] * num_query_tokens + [bos]` for every image (captioning).
   */
  input_ids?: readonly (readonly number[])[];
  /** [B, L] of 0/1; all ones when omitted. */
  attention_mask?: readonly (readonly number[])[];
}

export interface CausalLMGenerateArgs extends GenerateCallOptions {
  input_ids: readonly (readonly number[])[];
  attention_mask?: readonly (readonly number[])[];
}

export type GenerateOutput = SearchResult;

/** The options on top of `base`, validated, with HF's pad fallback (pad = first eos when the model has none). */
export function resolveGenerationConfig(base: GenerationConfig, options: GenerationOptions): GenerationConfig {
  const c = validateGenerationConfig(mergeGenerationOptions(base, options));
  if (c.pad_token_id === null && c.eos_token_id.length > 0) c.pad_token_id = c.eos_token_id[0]!;
  return c;
}

function checkPrompts(input_ids: readonly (readonly number[])[], attention_mask: readonly (readonly number[])[] | undefined, batch: number | null): void {
  const B = input_ids.length;
  const L = input_ids[0]?.length ?? 0;
  if (B === 0 || L === 0 || input_ids.some((r) => r.length !== L)) throw new RangeError('input_ids must be a non-empty rectangular [B, L] array of token ids');
  if (batch !== null && B !== batch) throw new RangeError(`${batch} images for ${B} prompts`);
  for (const row of input_ids) for (const id of row) if (!Number.isInteger(id) || id < 0) throw new RangeError(`invalid token id ${id}`);
  if (attention_mask) {
    if (attention_mask.length !== B || attention_mask.some((r) => r.length !== L)) throw new RangeError('attention_mask must have the shape of input_ids');
    for (const row of attention_mask) {
      if (row.some((m) => m !== 0 && m !== 1)) throw new RangeError('attention_mask holds 0/1 values');
      if (row[L - 1] !== 1) throw new RangeError('every row must end with a real token: pad batches on the left (OPT generates after the last position)');
    }
  }
}

async function search(model: StepModel, prompts: readonly (readonly number[])[], c: GenerationConfig, args: GenerateCallOptions): Promise<GenerateOutput> {
  const lookahead = args.decode_lookahead;
  if (lookahead !== undefined && (!Number.isInteger(lookahead) || lookahead < 0 || lookahead > 16)) {
    throw new GenerationConfigError(`decode_lookahead must be an integer in 0..16, got ${JSON.stringify(lookahead)}`);
  }
  const loopArgs: DecodeLoopArgs = {
    model,
    prompts,
    config: c,
    tokenizer: args.tokenizer,
    onToken: args.onToken,
    outputStepLogits: args.output_step_logits,
    decodeOnDevice: args.decode_on_device,
    lookahead,
    metrics: args.decode_metrics,
  };
  try {
    return c.num_beams > 1 ? await beamSearch(loopArgs) : await decodeLoop(loopArgs);
  } finally {
    model.dispose();
  }
}

/** Room the loop needs after the prompt (HF always runs at least one step, even past max_length). */
function newTokenBudget(c: GenerationConfig, promptLength: number): number {
  return Math.max(1, maxLengthFor(c, promptLength) - promptLength);
}

function cacheDtype(args: GenerateCallOptions): DType {
  const d = args.kv_cache_dtype ?? 'f32';
  if (d !== 'f32' && d !== 'f16') throw new GenerationConfigError(`kv_cache_dtype must be "f32" or "f16", got ${JSON.stringify(d)}`);
  return d;
}

function stepOptions(args: GenerateCallOptions): CausalLMStepOptions {
  if (args.decode_on_device !== undefined && typeof args.decode_on_device !== 'boolean') {
    throw new GenerationConfigError(`decode_on_device must be a boolean, got ${JSON.stringify(args.decode_on_device)}`);
  }
  return { replay: args.decode_on_device !== false };
}

/** Blip2ForConditionalGeneration.generate. */
export async function generateBlip2(model: Blip2ForConditionalGeneration, args: Blip2GenerateArgs): Promise<GenerateOutput> {
  const cfg = model.config;
  const base = args.generation_config ?? generationConfigFromJson(null, cfg.text_config);
  const c = resolveGenerationConfig(base, args);
  const B = args.pixel_values.dim(0);
  let input_ids = args.input_ids;
  if (!input_ids) {
    if (c.bos_token_id === null) throw new GenerationConfigError('bos_token_id is needed to caption without input_ids');
    const start = [...new Array<number>(cfg.image_token_index === null ? 0 : cfg.num_query_tokens).fill(cfg.image_token_index ?? 0), c.bos_token_id];
    input_ids = Array.from({ length: B }, () => [...start]);
  }
  checkPrompts(input_ids, args.attention_mask, B);
  const L = input_ids[0]!.length;
  const prompt = blip2PromptRunner(model, args.pixel_values, input_ids, args.attention_mask);
  const lm = model.language_model;
  return search(new CausalLMStepModel(lm, prompt, newTokenBudget(c, L), cacheDtype(args), stepOptions(args)), input_ids, c, args);
}

/**
 * BLIP-2's prompt pass: vision tower, Q-Former, projection, merged embeddings, then OPT over them into `cache`,
 * keeping the last position's logits. (Continuous batching prefills newcomers with it too.)
 */
export function blip2PromptRunner(
  model: Blip2ForConditionalGeneration,
  pixel_values: Tensor,
  input_ids: readonly (readonly number[])[],
  attention_mask?: readonly (readonly number[])[],
): PromptRunner {
  const cfg = model.config;
  const B = input_ids.length;
  const legacy = cfg.image_token_index === null;
  return {
    batch: B,
    positions: input_ids[0]!.length + (legacy ? cfg.num_query_tokens : 0),
    run: (cache: OPTKVCache) =>
      tidy(() => {
        const features = model.get_image_features(pixel_values);
        const merged = model.merge_image_features(features.language_model_inputs, input_ids, attention_mask);
        const out = model.language_model.call({ inputs_embeds: merged.inputs_embeds, attention_mask: merged.attention_mask, past_key_values: cache, logits_to_keep: 1 });
        return { logits: out.logits.reshape([B, out.logits.dim(-1)]), attention_mask: merged.attention_mask };
      }),
  };
}

/** OPTForCausalLM.generate on token ids (left-padded batches). */
export async function generateCausalLM(lm: OPTForCausalLM, args: CausalLMGenerateArgs): Promise<GenerateOutput> {
  const base = args.generation_config ?? generationConfigFromJson(null, lm.config);
  const c = resolveGenerationConfig(base, args);
  checkPrompts(args.input_ids, args.attention_mask, null);
  const B = args.input_ids.length;
  const L = args.input_ids[0]!.length;
  const vocab = lm.config.vocab_size;
  for (const row of args.input_ids) for (const id of row) if (id >= vocab) throw new RangeError(`token id ${id} outside the vocabulary (${vocab})`);
  const mask = args.attention_mask ? args.attention_mask.map((r) => [...r]) : args.input_ids.map((r) => r.map(() => 1));
  const prompt: PromptRunner = {
    batch: B,
    positions: L,
    run: (cache: OPTKVCache) =>
      tidy(() => {
        const gpu = lm.lm_head.weight.value.gpu;
        const input_ids = Tensor.from(gpu, Int32Array.from(args.input_ids.flat()), [B, L], 'i32');
        const out = lm.call({ input_ids, attention_mask: mask, past_key_values: cache, logits_to_keep: 1 });
        return { logits: out.logits.reshape([B, vocab]), attention_mask: mask };
      }),
  };
  return search(new CausalLMStepModel(lm, prompt, newTokenBudget(c, L), cacheDtype(args), stepOptions(args)), args.input_ids, c, args);
}
