/**
 * transformers' logits processors, as plain TypeScript. The host-side parts (which ids to penalise or ban)
 * feed the GPU kernels in logits-process-gpu.ts; the whole-row versions are the oracles of its tests and
 * the path sampling takes when it reads full rows (top_k = 0).
 *
 * Order, as GenerationMixin._get_logits_processor builds it: repetition penalty, no-repeat n-grams,
 * min_length, min_new_tokens, then (sampling only) temperature, top-k, top-p.
 */
import type { GenerationConfig } from './config.js';

/** The distinct ids of a sequence (RepetitionPenaltyLogitsProcessor gathers/scatters them, so each acts once). */
export function distinctTokens(sequence: readonly number[]): number[] {
  return [...new Set(sequence)];
}

/**
 * NoRepeatNGramLogitsProcessor's banned tokens for one hypothesis (prompt included, as HF sees input_ids):
 * every token that would complete an n-gram already present.
 */
export function ngramBans(sequence: readonly number[], n: number): number[] {
  const len = sequence.length;
  if (n <= 0 || len + 1 < n) return [];
  const prefix = sequence.slice(len + 1 - n).join(',');
  const banned = new Set<number>();
  for (let i = 0; i + n <= len; i++) {
    if (sequence.slice(i, i + n - 1).join(',') === prefix) banned.add(sequence[i + n - 1]!);
  }
  return [...banned];
}

/**
 * Whether MinLengthLogitsProcessor or MinNewTokensLengthLogitsProcessor bans the eos tokens at this step:
 * `length` ids so far (prompt included), `promptLength` the input_ids length.
 */
export function eosBanned(c: GenerationConfig, length: number, promptLength: number): boolean {
  if (c.eos_token_id.length === 0) return false;
  return (c.min_length > 0 && length < c.min_length) || (c.min_new_tokens > 0 && length - promptLength < c.min_new_tokens);
}

/** The ids to set to -inf for one row: banned n-grams and, while min lengths are unmet, the eos tokens. */
export function bannedTokens(c: GenerationConfig, sequence: readonly number[], promptLength: number): number[] {
  const out = c.no_repeat_ngram_size > 0 ? ngramBans(sequence, c.no_repeat_ngram_size) : [];
  if (eosBanned(c, sequence.length, promptLength)) for (const e of c.eos_token_id) if (!out.includes(e)) out.push(e);
  return out;
}

// ---- whole-row references (in place on one row of f32 scores)

export function repetitionPenaltyRow(row: Float32Array, sequence: readonly number[], penalty: number): void {
  for (const id of distinctTokens(sequence)) {
    if (id < 0 || id >= row.length) continue;
    const s = row[id]!;
    row[id] = s < 0 ? s * penalty : s / penalty;
  }
}

export function banRow(row: Float32Array, ids: readonly number[]): void {
  for (const id of ids) if (id >= 0 && id < row.length) row[id] = -Infinity;
}

/** TemperatureLogitsWarper; scaled by 1/t as the GPU path does (HF divides: at most an ulp apart). */
export function temperatureRow(row: Float32Array, temperature: number): void {
  const f = Math.fround(1 / temperature);
  for (let i = 0; i < row.length; i++) row[i] = row[i]! * f;
}

/** TopKLogitsWarper: everything below the k-th largest value becomes -inf (ties with it stay). */
export function topKRow(row: Float32Array, k: number, minTokensToKeep = 1): void {
  const kk = Math.min(Math.max(k, minTokensToKeep), row.length);
  const kth = Float32Array.from(row).sort((a, b) => b - a)[kk - 1]!;
  for (let i = 0; i < row.length; i++) if (row[i]! < kth) row[i] = -Infinity;
}

/**
 * TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability is <= 1 - top_p, keep at
 * least `minTokensToKeep` of the largest.
 */
export function topPRow(row: Float32Array, topP: number, minTokensToKeep = 1): void {
  const order = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[a]! - row[b]! || a - b);
  const probs = softmaxOf(order.map((i) => row[i]!));
  let cum = 0;
  const limit = order.length - minTokensToKeep;
  for (let j = 0; j < order.length; j++) {
    cum += probs[j]!;
    if (j < limit && cum <= 1 - topP) row[order[j]!] = -Infinity;
  }
}

/** Softmax in f64 (the host side of sampling); -inf entries get 0. */
export function softmaxOf(values: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
  const out = new Float64Array(values.length);
  if (max === -Infinity) return out.fill(1 / values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += out[i] = Math.exp(values[i]! - max);
  for (let i = 0; i < values.length; i++) out[i] /= sum;
  return out;
}

/**
 * Every processor HF would run on one row, in HF's order (the reference the GPU path is tested against).
 * `sampling` adds the warpers (temperature, top-k, top-p).
 */
export function processRowCpu(row: Float32Array, sequence: readonly number[], promptLength: number, c: GenerationConfig, sampling: boolean): void {
  if (c.repetition_penalty !== 1) repetitionPenaltyRow(row, sequence, c.repetition_penalty);
  banRow(row, bannedTokens(c, sequence, promptLength));
  if (!sampling) return;
  if (c.temperature !== 1) temperatureRow(row, c.temperature);
  if (c.top_k !== 0) topKRow(row, c.top_k);
  if (c.top_p < 1) topPRow(row, c.top_p);
}
