/**
 * One token per row of a decode batch whose rows follow different settings (greedy next to sampled, other
 * temperatures, penalties, top-k): the processors run per row on views of the logits, then one argmax and one
 * top-k over the whole batch, read back together, and each row takes what its settings ask for.
 *
 * A sampled request draws from its own stream, one draw per sequence per step in sequence order, and a
 * sequence that already finished still takes its draw: that is what the one-request decode loop does (it keeps
 * feeding finished rows and drawing for them), so a seed gives the same samples alone and in any batch.
 */
import { argmax } from '../kernels/argmax.js';
import { TOPK_MAX_K, topk } from '../kernels/topk.js';
import type { GenerationConfig } from '../generation/config.js';
import { processLogitsGpu } from '../generation/logits-process-gpu.js';
import type { Random } from '../generation/rng.js';
import { sampleCandidates, sortRow } from '../generation/sampling.js';
import { tidy, type Tensor } from '../tensor.js';

/** What the picker needs to know about one row of the logits. */
export interface PickRow {
  config: GenerationConfig;
  /** The row's input ids and generated ids so far (its processors look at them). */
  sequence: readonly number[];
  /** Length of the prompt's input ids (min_new_tokens counts from it). */
  promptLength: number;
}

/** The candidates of a sampled row, largest first: its own top-k, or the whole row when top_k is 0 or large. */
export interface Candidates {
  values: ArrayLike<number>;
  ids: ArrayLike<number>;
}

export interface Picked {
  /** Greedy rows: the argmax; sampled rows: -1 (draw from `candidates`). */
  greedy: number[];
  candidates: (Candidates | null)[];
}

/** Runs every row's processors in place on `logits` [R, V] and reads back each row's choice or candidates. */
export async function readChoices(logits: Tensor, rows: readonly PickRow[]): Promise<Picked> {
  const [R, V] = logits.shape as [number, number];
  if (rows.length !== R) throw new RangeError(`${rows.length} rows for logits ${logits}`);
  tidy(() => rows.forEach((r, i) => processLogitsGpu(logits.rows(i, 1), [r.sequence], r.promptLength, r.config, r.config.do_sample)));
  const sampled = rows.map((r) => r.config.do_sample);
  const kOf = (c: GenerationConfig) => (c.top_k === 0 ? V : Math.min(c.top_k, V));
  const fromTopk = rows.filter((r) => r.config.do_sample && kOf(r.config) <= TOPK_MAX_K);
  const k = Math.max(0, ...fromTopk.map((r) => kOf(r.config)));
  const wholeRows = rows.some((r) => r.config.do_sample && kOf(r.config) > TOPK_MAX_K);
  const ids = sampled.every(Boolean) ? null : argmax(logits);
  const top = k > 0 ? topk(logits, k) : null;
  try {
    const [greedyIds, values, indices, all] = await Promise.all([ids?.read(), top?.values.read(), top?.indices.read(), wholeRows ? logits.read() : undefined]);
    const candidates = rows.map((r, i): Candidates | null => {
      if (!r.config.do_sample) return null;
      const kk = kOf(r.config);
      if (kk <= TOPK_MAX_K) return { values: values!.subarray(i * k, i * k + kk), ids: indices!.subarray(i * k, i * k + kk) };
      const sorted = sortRow(all!.subarray(i * V, (i + 1) * V));
      return { values: sorted.values.subarray(0, kk), ids: sorted.ids.subarray(0, kk) };
    });
    return { greedy: rows.map((_, i) => (sampled[i] ? -1 : greedyIds![i]!)), candidates };
  } finally {
    ids?.dispose();
    top?.values.dispose();
    top?.indices.dispose();
  }
}

/** A sampled row's token from its candidates (top-p, then the draw), as `pickSampled` does. */
export function drawFrom(c: Candidates, config: GenerationConfig, rng: Random): number {
  return sampleCandidates(c.values, c.ids, config, rng);
}
