/**
 * Generation settings with transformers' names and defaults (GenerationConfig), the checkpoint's
 * generation_config.json on top, the caller's options on top of that, validated the way transformers
 * validates them (its errors become GenerationConfigError here).
 */
import { fileExists, readJsonFile } from '../io/text-file.js';
import { joinPath } from '../io/checkpoint.js';

export type EarlyStopping = boolean | 'never';

/** What a caller may set; every field falls back to the checkpoint's generation config, then HF's default. */
export interface GenerationOptions {
  /** Tokens to generate at most (wins over max_length, as in HF). */
  max_new_tokens?: number;
  /** Prompt + generated tokens at most (HF default 20, counted on input_ids). */
  max_length?: number;
  /** The eos tokens are banned until this many tokens have been generated. */
  min_new_tokens?: number;
  /** The eos tokens are banned while prompt + generated is shorter than this. */
  min_length?: number;
  do_sample?: boolean;
  num_beams?: number;
  num_return_sequences?: number;
  /** Beam hypotheses score sum(logprobs) / generated_length ** length_penalty. */
  length_penalty?: number;
  early_stopping?: EarlyStopping;
  temperature?: number;
  /** 0 disables; HF's default is 50 (only used when sampling). */
  top_k?: number;
  top_p?: number;
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  eos_token_id?: number | readonly number[] | null;
  pad_token_id?: number | null;
  bos_token_id?: number | null;
  /** Seed of the sampling PRNG (ours, not torch's: the same seed does not give torch's draws). */
  seed?: number;
  /**
   * One seed per prompt (instead of `seed`): each prompt's sequences draw from their own stream, so a prompt
   * samples the same tokens whatever other prompts share the call (a server batching seeded requests).
   */
  row_seeds?: readonly number[];
  /** Stop strings, matched on the decoded generated text (needs a tokenizer). */
  stop?: readonly string[];
}

/** Every setting resolved. */
export interface GenerationConfig {
  max_new_tokens: number | null;
  max_length: number;
  min_new_tokens: number;
  min_length: number;
  do_sample: boolean;
  num_beams: number;
  num_return_sequences: number;
  length_penalty: number;
  early_stopping: EarlyStopping;
  temperature: number;
  top_k: number;
  top_p: number;
  repetition_penalty: number;
  no_repeat_ngram_size: number;
  /** Empty when the model has none (generation then only stops at the length limit). */
  eos_token_id: number[];
  pad_token_id: number | null;
  bos_token_id: number | null;
  seed: number | null;
  row_seeds: number[] | null;
  stop: string[];
}

/** transformers' GenerationConfig defaults (special tokens come from the model). */
export const HF_GENERATION_DEFAULTS: GenerationConfig = {
  max_new_tokens: null,
  max_length: 20,
  min_new_tokens: 0,
  min_length: 0,
  do_sample: false,
  num_beams: 1,
  num_return_sequences: 1,
  length_penalty: 1.0,
  early_stopping: false,
  temperature: 1.0,
  top_k: 50,
  top_p: 1.0,
  repetition_penalty: 1.0,
  no_repeat_ngram_size: 0,
  eos_token_id: [],
  pad_token_id: null,
  bos_token_id: null,
  seed: null,
  row_seeds: null,
  stop: [],
};

export class GenerationConfigError extends Error {
  override readonly name = 'GenerationConfigError';
}

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenList(v: unknown, what: string): number[] {
  const list = Array.isArray(v) ? v : [v];
  for (const id of list) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new GenerationConfigError(`${what} must be a non-negative integer or a list of them, got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

function optionalToken(v: unknown, what: string): number | null {
  if (v === null) return null;
  if (!Number.isInteger(v) || (v as number) < 0) throw new GenerationConfigError(`${what} must be a non-negative integer or null, got ${JSON.stringify(v)}`);
  return v as number;
}

/**
 * Overlays `options` on `base`: undefined fields keep the base value, everything else is checked and copied.
 * Unknown keys are ignored, as generation_config.json files carry many settings we do not use.
 */
export function mergeGenerationOptions(base: GenerationConfig, options: GenerationOptions | Json): GenerationConfig {
  const out: GenerationConfig = { ...base, eos_token_id: [...base.eos_token_id], stop: [...base.stop] };
  const o = options as Json;
  const num = (k: keyof GenerationConfig, check: (v: number) => boolean, rule: string): void => {
    const v = o[k];
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !check(v)) throw new GenerationConfigError(`${k} must be ${rule}, got ${JSON.stringify(v)}`);
    (out as unknown as Json)[k] = v;
  };
  const int = (v: number) => Number.isInteger(v);
  num('max_length', (v) => int(v) && v > 0, 'a positive integer');
  num('min_new_tokens', (v) => int(v) && v >= 0, 'a non-negative integer');
  num('min_length', (v) => int(v) && v >= 0, 'a non-negative integer');
  num('num_beams', (v) => int(v) && v >= 1, 'a positive integer');
  num('num_return_sequences', (v) => int(v) && v >= 1, 'a positive integer');
  num('length_penalty', Number.isFinite, 'a finite number');
  num('temperature', (v) => Number.isFinite(v) && v > 0, 'a strictly positive number');
  num('top_k', (v) => int(v) && v >= 0, 'a non-negative integer (0 disables it)');
  num('top_p', (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  num('repetition_penalty', (v) => Number.isFinite(v) && v > 0, 'a strictly positive number');
  num('no_repeat_ngram_size', (v) => int(v) && v >= 0, 'a non-negative integer');
  if (o.max_new_tokens !== undefined) {
    const v = o.max_new_tokens;
    if (v !== null && (typeof v !== 'number' || !int(v) || v <= 0)) throw new GenerationConfigError(`max_new_tokens must be a positive integer, got ${JSON.stringify(v)}`);
    out.max_new_tokens = v as number | null;
  }
  if (o.do_sample !== undefined) {
    if (typeof o.do_sample !== 'boolean') throw new GenerationConfigError(`do_sample must be a boolean, got ${JSON.stringify(o.do_sample)}`);
    out.do_sample = o.do_sample;
  }
  if (o.early_stopping !== undefined) {
    const v = o.early_stopping;
    if (v !== true && v !== false && v !== 'never') throw new GenerationConfigError(`early_stopping must be true, false or "never", got ${JSON.stringify(v)}`);
    out.early_stopping = v;
  }
  if (o.eos_token_id !== undefined) out.eos_token_id = o.eos_token_id === null ? [] : tokenList(o.eos_token_id, 'eos_token_id');
  if (o.pad_token_id !== undefined) out.pad_token_id = optionalToken(o.pad_token_id, 'pad_token_id');
  if (o.bos_token_id !== undefined) out.bos_token_id = optionalToken(o.bos_token_id, 'bos_token_id');
  if (o.seed !== undefined && o.seed !== null) {
    if (typeof o.seed !== 'number' || !int(o.seed)) throw new GenerationConfigError(`seed must be an integer, got ${JSON.stringify(o.seed)}`);
    out.seed = o.seed;
  }
  if (o.row_seeds !== undefined && o.row_seeds !== null) {
    const seeds = o.row_seeds as unknown;
    if (!Array.isArray(seeds) || seeds.length === 0 || seeds.some((v) => typeof v !== 'number' || !int(v))) {
      throw new GenerationConfigError(`row_seeds must be a non-empty list of integers, got ${JSON.stringify(seeds)}`);
    }
    out.row_seeds = [...(seeds as number[])];
  }
  if (o.stop !== undefined && o.stop !== null) {
    const stop = typeof o.stop === 'string' ? [o.stop] : o.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new GenerationConfigError('stop must be a list of non-empty strings');
    out.stop = [...(stop as string[])];
  }
  return out;
}

/** Checks the combinations transformers rejects; returns the config for chaining. */
export function validateGenerationConfig(c: GenerationConfig): GenerationConfig {
  if (c.num_beams === 1 && c.num_return_sequences > 1 && !c.do_sample) {
    throw new GenerationConfigError(`greedy search returns one sequence per input: num_return_sequences ${c.num_return_sequences} needs num_beams >= ${c.num_return_sequences} or do_sample`);
  }
  if (c.num_beams > 1 && c.num_return_sequences > c.num_beams) {
    throw new GenerationConfigError(`num_return_sequences (${c.num_return_sequences}) must be <= num_beams (${c.num_beams})`);
  }
  if (c.num_beams > 1 && c.do_sample) throw new GenerationConfigError('beam sampling (num_beams > 1 with do_sample) is not supported; use one or the other');
  if (c.row_seeds && c.seed !== null) throw new GenerationConfigError('give either seed or row_seeds, not both');
  return c;
}

/**
 * The checkpoint's generation settings: the text model's special tokens, then generation_config.json
 * (an object) on top, as transformers builds model.generation_config.
 */
export function generationConfigFromJson(json: unknown, textConfig: { bos_token_id: number; eos_token_id: number; pad_token_id: number }): GenerationConfig {
  if (json !== null && json !== undefined && !isPlainObject(json)) throw new GenerationConfigError('generation_config.json must hold an object');
  const base: GenerationConfig = {
    ...HF_GENERATION_DEFAULTS,
    bos_token_id: textConfig.bos_token_id,
    eos_token_id: [textConfig.eos_token_id],
    pad_token_id: textConfig.pad_token_id,
  };
  return mergeGenerationOptions(base, (json ?? {}) as Json);
}

/** Reads `dir/generation_config.json` when present (null otherwise). */
export async function readGenerationConfigJson(dir: string): Promise<unknown> {
  const path = joinPath(dir, 'generation_config.json');
  return (await fileExists(path)) ? readJsonFile(path) : null;
}

/**
 * The length limit in tokens (prompt included) for a prompt of `promptLength` ids: max_new_tokens wins over
 * max_length, as in HF.
 */
export function maxLengthFor(c: GenerationConfig, promptLength: number): number {
  return c.max_new_tokens !== null ? promptLength + c.max_new_tokens : c.max_length;
}
