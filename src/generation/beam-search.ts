/**
 * Beam search, as transformers' `_beam_search`: log-softmax of the logits, the processors on the log-probs,
 * then the beam bookkeeping (beam-state.ts). The GPU reduces each row to its top K = 2 * num_beams
 * candidates (more with several eos ids); only those come back, never whole rows.
 */
import { logSoftmax } from '../kernels/softmax.js';
import { TOPK_MAX_K, topk } from '../kernels/topk.js';
import type { Tensor } from '../tensor.js';
import { BeamSearchState } from './beam-state.js';
import { maxLengthFor } from './config.js';
import type { DecodeLoopArgs } from './decode-loop.js';
import { processLogitsGpu } from './logits-process-gpu.js';
import { gatherRows } from './step-model.js';
import { StoppingCriteria } from './stopping.js';
import type { SearchResult } from './types.js';

export async function beamSearch(args: DecodeLoopArgs): Promise<SearchResult> {
  const { model, config: c } = args;
  if (args.onToken) throw new Error('token streaming is not available with beam search (the best beam is only known at the end); use num_beams 1');
  const L = args.prompts[0]!.length;
  const stopping = new StoppingCriteria(maxLengthFor(c, L), c.eos_token_id, c.stop, args.tokenizer);
  const state = new BeamSearchState(args.prompts, c, stopping);
  const V = model.vocabSize;
  const k = Math.min(state.beamsToKeep, V);
  if (k * c.num_beams < state.beamsToKeep) throw new RangeError(`num_beams ${c.num_beams} is too large for a vocabulary of ${V}`);
  if (k > TOPK_MAX_K) throw new RangeError(`num_beams ${c.num_beams} needs top-${k} per beam; at most ${TOPK_MAX_K} is supported`);
  const stepLogits: Float32Array[] | undefined = args.outputStepLogits ? [] : undefined;
  const parents = args.prompts.flatMap((_, b) => new Array<number>(c.num_beams).fill(b));

  let logits: Tensor | null = model.prefill();
  try {
    model.reorder(parents);
    const wide: Tensor = gatherRows(logits, parents);
    logits.dispose();
    logits = wide;
    for (;;) {
      if (stepLogits) stepLogits.push((await logits.read()) as Float32Array);
      const scores = logSoftmax(logits);
      logits.dispose();
      logits = null;
      let best: { values: Tensor; indices: Tensor };
      try {
        processLogitsGpu(scores, state.rowSequences(), L, c, false);
        best = topk(scores, k);
      } finally {
        scores.dispose();
      }
      let step: ReturnType<BeamSearchState['advance']>;
      try {
        const [values, ids] = await Promise.all([best.values.read(), best.indices.read()]);
        step = state.advance(values, ids, k, V);
      } finally {
        best.values.dispose();
        best.indices.dispose();
      }
      if (step.done) break;
      model.reorder(step.parents);
      logits = model.step(step.tokens);
    }
  } finally {
    logits?.dispose();
  }
  return { ...state.result(c.num_return_sequences), ...(stepLogits ? { step_logits: stepLogits } : {}) };
}
