/**
 * The valid range of every generation parameter, shared by the CLI flags, the HTTP API fields and the engine's
 * own check, so that the same value is accepted (or refused with the same range) everywhere. The ranges are
 * OpenAI's where OpenAI has the parameter (temperature [0, 2], top_p (0, 1]; top_p 0 would keep no token here),
 * and the engine's own bounds for the extensions. Server operators narrow `max_tokens` and `n` further with
 * `--max-tokens-limit` and the `n` limit; the model's context bounds prompt + new tokens.
 */
import type { GenerationParams } from './engine.js';

export interface ParamRange {
  /** The JSON field of the chat completions API. */
  readonly api: string;
  /** The command-line flag. */
  readonly cli: string;
  readonly lo: number;
  readonly hi: number;
  /** `lo` itself is outside the range. */
  readonly loOpen?: boolean;
  readonly integer: boolean;
}

/** The numeric generation parameters. */
export type RangedParam = Exclude<keyof GenerationParams, 'stop'>;

export const GENERATION_RANGES: Readonly<Record<RangedParam, ParamRange>> = {
  maxNewTokens: { api: 'max_tokens', cli: '--max-new-tokens', lo: 1, hi: 1_000_000, integer: true },
  numBeams: { api: 'num_beams', cli: '--num-beams', lo: 1, hi: 16, integer: true },
  temperature: { api: 'temperature', cli: '--temperature', lo: 0, hi: 2, integer: false },
  topP: { api: 'top_p', cli: '--top-p', lo: 0, hi: 1, loOpen: true, integer: false },
  topK: { api: 'top_k', cli: '--top-k', lo: 0, hi: 1_000_000, integer: true },
  seed: { api: 'seed', cli: '--seed', lo: Number.MIN_SAFE_INTEGER, hi: Number.MAX_SAFE_INTEGER, integer: true },
  repetitionPenalty: { api: 'repetition_penalty', cli: '--repetition-penalty', lo: 0, hi: 10, loOpen: true, integer: false },
  n: { api: 'n', cli: '--num-return-sequences', lo: 1, hi: 64, integer: true },
};

/** `[0, 2]`, `(0, 1]`. */
export function rangeText(r: Pick<ParamRange, 'lo' | 'hi' | 'loOpen'>): string {
  return `${r.loOpen ? '(' : '['}${r.lo}, ${r.hi}]`;
}

export function inRange(r: Pick<ParamRange, 'lo' | 'hi' | 'loOpen' | 'integer'>, v: unknown): v is number {
  return (
    typeof v === 'number' && Number.isFinite(v) && (!r.integer || Number.isInteger(v)) && v >= r.lo && v <= r.hi && !(r.loOpen && v === r.lo)
  );
}

/** `'temperature' must be a number in [0, 2] (got 3)`, naming the field as the caller's users know it. */
export function rangeMessage(name: string, r: Pick<ParamRange, 'lo' | 'hi' | 'loOpen' | 'integer'>, got: string): string {
  return `${name} must be ${r.integer ? 'an integer' : 'a number'} in ${rangeText(r)} (got ${got})`;
}
