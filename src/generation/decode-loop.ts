/**
 * Greedy search and multinomial sampling: transformers' `_sample` loop. Every row gets one token per step;
 * a row that finished (eos, stop string) gets pad_token_id from then on while the others go on, and the
 * loop ends when all rows are done or the length limit is hit.
 */
import type { Tensor } from '../tensor.js';
import { GenerationConfigError, maxLengthFor, type GenerationConfig } from './config.js';
import { pickGreedy } from './greedy.js';
import { processLogitsGpu } from './logits-process-gpu.js';
import { Xoshiro128, randomSeed, type Random } from './rng.js';
import { pickSampled } from './sampling.js';
import { gatherRows, type StepModel } from './step-model.js';
import { StoppingCriteria } from './stopping.js';
import { TokenStreamer } from './streamer.js';
import type { FinishReason, OnToken, SearchResult, TokenDecoder } from './types.js';

export interface DecodeLoopArgs {
  model: StepModel;
  /** input_ids per prompt row, all the same length (left-padded). */
  prompts: readonly (readonly number[])[];
  /** Validated, with pad_token_id resolved. */
  config: GenerationConfig;
  tokenizer?: TokenDecoder;
  onToken?: OnToken;
  outputStepLogits?: boolean;
}

/**
 * The stream each row draws from: one for the whole call (`seed`, or a random one), or one per prompt
 * (`row_seeds`), shared by that prompt's sequences in row order.
 */
function samplingStreams(c: GenerationConfig, prompts: number, parents: readonly number[]): (row: number) => Random {
  if (!c.row_seeds) {
    const rng = new Xoshiro128(c.seed ?? randomSeed());
    return () => rng;
  }
  if (c.row_seeds.length !== prompts) {
    throw new GenerationConfigError(`row_seeds has ${c.row_seeds.length} seeds for ${prompts} prompts`);
  }
  const streams = c.row_seeds.map((seed) => new Xoshiro128(seed));
  return (row) => streams[parents[row]!]!;
}

export async function decodeLoop(args: DecodeLoopArgs): Promise<SearchResult> {
  const { model, config: c } = args;
  const L = args.prompts[0]!.length;
  const expand = c.do_sample ? c.num_return_sequences : 1;
  const parents = args.prompts.flatMap((_, b) => new Array<number>(expand).fill(b));
  const sequences = parents.map((b) => [...args.prompts[b]!]);
  const rows = sequences.length;
  const stopping = new StoppingCriteria(maxLengthFor(c, L), c.eos_token_id, c.stop, args.tokenizer);
  const streamer = args.onToken ? new TokenStreamer(rows, stopping, args.onToken) : null;
  const rngFor = c.do_sample ? samplingStreams(c, args.prompts.length, parents) : null;
  const hasEos = c.eos_token_id.length > 0;
  const newTokens: number[][] = sequences.map(() => []);
  const reasons: (FinishReason | null)[] = new Array<FinishReason | null>(rows).fill(null);
  const stepLogits: Float32Array[] | undefined = args.outputStepLogits ? [] : undefined;

  let logits: Tensor | null = model.prefill();
  try {
    if (expand > 1) {
      model.reorder(parents);
      const wide: Tensor = gatherRows(logits, parents);
      logits.dispose();
      logits = wide;
    }
    for (;;) {
      if (stepLogits) stepLogits.push((await logits.read()) as Float32Array);
      processLogitsGpu(logits, sequences, L, c, c.do_sample);
      const picked = rngFor ? await pickSampled(logits, c, rngFor) : await pickGreedy(logits);
      logits.dispose();
      logits = null;
      for (let r = 0; r < rows; r++) {
        const done = reasons[r] !== null;
        // HF pads finished rows only when an eos criterion exists; without one a stopped row keeps its tokens.
        const token = done && hasEos ? c.pad_token_id! : picked[r]!;
        sequences[r]!.push(token);
        if (done) continue;
        newTokens[r]!.push(token);
        reasons[r] = stopping.check(newTokens[r]!, sequences[r]!.length);
        streamer?.push(r, token, newTokens[r]!, reasons[r] ?? null);
      }
      if (reasons.every((x) => x !== null)) break;
      logits = model.step(sequences.map((s) => s[s.length - 1]!));
    }
  } finally {
    logits?.dispose();
  }
  return { sequences, new_tokens: newTokens, finish_reasons: reasons as FinishReason[], ...(stepLogits ? { step_logits: stepLogits } : {}) };
}
