/**
 * The logits processors on the GPU, in place on scores [R, V] (raw logits when greedy/sampling, log-softmax
 * when beam searching, as HF), so the decode loop never reads whole rows back. Which ids to touch is decided
 * on the host (logits-process.ts) and uploaded as small [R, n] id lists.
 */
import type { DecodeState } from '../kernels/decode-state.js';
import { repetitionPenalty, scaleInPlace, setLogits } from '../kernels/logits.js';
import { Tensor, tidy } from '../tensor.js';
import type { GenerationConfig } from './config.js';
import { bannedTokens, distinctTokens } from './logits-process.js';

/** Rows of ids padded with -1 to one width, as the logits kernels take them; null when every row is empty. */
export function idTable(rows: readonly (readonly number[])[]): { data: Int32Array; width: number } | null {
  const width = Math.max(0, ...rows.map((r) => r.length));
  if (width === 0) return null;
  const data = new Int32Array(rows.length * width).fill(-1);
  rows.forEach((r, i) => data.set(r, i * width));
  return { data, width };
}

/**
 * Runs HF's processors on `scores` [R, V] f32: repetition penalty, no-repeat n-gram and min-length eos bans,
 * and with `sampling` the temperature. (Top-k and top-p happen where the candidates are read back.)
 * `sequences[r]` is row r's whole input_ids so far, `promptLength` the input_ids length before generation.
 */
export function processLogitsGpu(scores: Tensor, sequences: readonly (readonly number[])[], promptLength: number, c: GenerationConfig, sampling: boolean): void {
  const R = scores.dim(0);
  if (scores.ndim !== 2 || sequences.length !== R) throw new RangeError(`processLogitsGpu: scores ${scores} for ${sequences.length} sequences`);
  tidy(() => {
    const gpu = scores.gpu;
    if (c.repetition_penalty !== 1) {
      const t = idTable(sequences.map(distinctTokens));
      if (t) repetitionPenalty(scores, Tensor.from(gpu, t.data, [R, t.width], 'i32'), c.repetition_penalty);
    }
    const bans = idTable(sequences.map((s) => bannedTokens(c, s, promptLength)));
    if (bans) setLogits(scores, Tensor.from(gpu, bans.data, [R, bans.width], 'i32'), -Infinity);
    if (sampling && c.temperature !== 1) scaleInPlace(scores, Math.fround(1 / c.temperature));
  });
}

/** Whether `processLogitsOnDevice` covers the processors `c` asks for (greedy search; at most 8 eos ids). */
export function deviceProcessorsCover(c: GenerationConfig): boolean {
  return c.eos_token_id.length <= 8;
}

/**
 * The same processors as `processLogitsGpu` (greedy: no temperature), with the ids taken from the decode state's
 * history on the device instead of host-built lists, so that the step that runs them can be captured and replayed
 * without the host knowing the tokens: the repetition penalty over each row's history (the same kernel), then
 * the no-repeat n-gram and min-length eos bans (decode_state.wgsl BANS).
 */
export function processLogitsOnDevice(scores: Tensor, state: DecodeState, c: GenerationConfig): void {
  tidy(() => {
    if (c.repetition_penalty !== 1) repetitionPenalty(scores, state.history(), c.repetition_penalty);
    const minLength = c.eos_token_id.length > 0 && (c.min_length > 0 || c.min_new_tokens > 0);
    if (c.no_repeat_ngram_size > 0 || minLength) {
      state.ban(scores, {
        ngram: c.no_repeat_ngram_size,
        minLength: minLength ? c.min_length : 0,
        minNewTokens: minLength ? c.min_new_tokens : 0,
        eos: c.eos_token_id,
      });
    }
  });
}
