/**
 * Greedy search with the token chosen on the device. Each step is one captured program (src/gpu/program.ts):
 * the forward from the tokens the state says, the logits processors over the state's history, the argmax, and
 * the state's advance (the choice becomes the next fed token, position and cache length move on). The host only
 * replays it and copies the chosen ids into a ring of mapped buffers; it records step t+1 without waiting for
 * step t's ids when `lookahead` > 0, and reads the ids back in order for stopping criteria and streaming. Rows
 * that finished keep running on the device until the batch ends; their extra tokens are dropped by the host
 * (RowBook), as HF drops a finished row's picks in favour of padding.
 */
import type { DecodeState } from '../kernels/decode-state.js';
import type { GpuProgram } from '../gpu/program.js';
import { ReadbackRing } from '../gpu/readback-ring.js';
import type { Tensor } from '../tensor.js';
import type { GenerationConfig } from './config.js';
import { processLogitsOnDevice } from './logits-process-gpu.js';
import type { RowBook } from './row-book.js';
import type { DecodeMetrics } from './types.js';

/** What a StepModel offers for decoding on the device (after its prefill). */
export interface DeviceDecoder {
  readonly state: DecodeState;
  /**
   * Captures one step: the forward from the state's fed tokens, then `after(logits)` (kernels that choose the
   * next fed tokens and commit the state). The caller replays and disposes the program.
   */
  capture(after: (logits: Tensor) => void): GpuProgram;
}

/** Steps submitted ahead of the read-back by default: none on software adapters (see docs/generation.md). */
export function defaultLookahead(software: boolean): number {
  return software ? 0 : 2;
}

/**
 * Runs greedy search on the device from the prompt's logits (consumed) until `book` is done or `budget` tokens
 * were generated.
 */
export async function greedyOnDevice(book: RowBook, first: Tensor, dec: DeviceDecoder, c: GenerationConfig, budget: number, lookahead: number, metrics?: DecodeMetrics): Promise<void> {
  const gpu = first.gpu;
  const state = dec.state;
  const choose = (logits: Tensor, commit: boolean) => {
    processLogitsOnDevice(logits, state, c);
    state.pick(logits, { commit });
  };
  const ring = new ReadbackRing(gpu, state.rows * 4, lookahead + 1);
  const fedOffset = state.offsets.fed * 4;
  let program: GpuProgram | null = null;
  const now = () => performance.now();
  const t0 = now();
  const recordSteps: number[] = [];
  let bookkeeping = 0;
  let waits = 0;
  let steps = 0;
  try {
    try {
      choose(first, false);
    } finally {
      first.dispose();
    }
    ring.push(state.tensor.buffer, fedOffset); // the prompt's token: submitted before the step is captured
    // One token only (max_new_tokens 1): nothing to capture.
    const step = budget > 1 ? (program = dec.capture((logits) => choose(logits, true))) : null;
    let submitted = 1;
    for (;;) {
      while (step && submitted < budget && ring.pending <= lookahead) {
        if (ring.pending === 0) waits++;
        const s = now();
        gpu.replay(step);
        ring.push(state.tensor.buffer, fedOffset);
        recordSteps.push(now() - s);
        submitted++;
        steps++;
      }
      const ids = new Int32Array(await ring.shift());
      const s = now();
      book.push(ids);
      bookkeeping += now() - s;
      if (book.done || (ring.pending === 0 && submitted >= budget)) break;
    }
  } finally {
    ring.dispose();
    program?.dispose();
  }
  if (metrics) {
    Object.assign(metrics, {
      mode: 'device',
      lookahead,
      steps,
      dispatches: steps * (program?.dispatchCount ?? 0),
      hostRecordMs: recordSteps.reduce((a, b) => a + b, 0),
      hostRecordStepMs: recordSteps,
      hostBookkeepingMs: bookkeeping,
      readbackWaits: waits,
      wallMs: now() - t0,
      dispatchesByKernel: program?.histogram() ?? {},
    } satisfies DecodeMetrics);
  }
}
