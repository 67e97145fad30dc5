/**
 * Greedy search and multinomial sampling: transformers' `_sample` loop. Every row gets one token per step;
 * a row that finished (eos, stop string) gets pad_token_id from then on while the others go on, and the
 * loop ends when all rows are done or the length limit is hit.
 *
 * Greedy search runs on the device when the model offers it (device-loop.ts): the token is chosen there and the
 * host only reads the ids back. Sampling draws on the host (its float64 softmax and xoshiro stream are the
 * reproducibility contract of `seed`), and so does greedy search when every step's logits are asked for.
 */
import type { Tensor } from '../tensor.js';
import { GenerationConfigError, maxLengthFor, type GenerationConfig } from './config.js';
import { defaultLookahead, greedyOnDevice } from './device-loop.js';
import { pickGreedy } from './greedy.js';
import { deviceProcessorsCover, processLogitsGpu } from './logits-process-gpu.js';
import { Xoshiro128, randomSeed, type Random } from './rng.js';
import { RowBook } from './row-book.js';
import { pickSampled } from './sampling.js';
import { gatherRows, type StepModel } from './step-model.js';
import { StoppingCriteria } from './stopping.js';
import { TokenStreamer } from './streamer.js';
import type { DecodeMetrics, OnToken, SearchResult, TokenDecoder } from './types.js';

export interface DecodeLoopArgs {
  model: StepModel;
  /** input_ids per prompt row, all the same length (left-padded). */
  prompts: readonly (readonly number[])[];
  /** Validated, with pad_token_id resolved. */
  config: GenerationConfig;
  tokenizer?: TokenDecoder;
  onToken?: OnToken;
  outputStepLogits?: boolean;
  /** Greedy search: choose tokens on the device when the model can (default true). */
  decodeOnDevice?: boolean;
  /** Device decoding: steps submitted before the previous step's tokens are read back (default by adapter). */
  lookahead?: number;
  /** Filled with what the loop measured (benchmarks). */
  metrics?: DecodeMetrics;
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
  const stopping = new StoppingCriteria(maxLengthFor(c, L), c.eos_token_id, c.stop, args.tokenizer);
  const streamer = args.onToken ? new TokenStreamer(parents.length, stopping, args.onToken) : null;
  const book = new RowBook(args.prompts, parents, c, stopping, streamer);
  const rngFor = c.do_sample ? samplingStreams(c, args.prompts.length, parents) : null;
  const stepLogits: Float32Array[] | undefined = args.outputStepLogits ? [] : undefined;
  const budget = Math.max(1, stopping.maxLength - L);

  let logits: Tensor | null = model.prefill();
  try {
    if (expand > 1) {
      model.reorder(parents);
      const wide: Tensor = gatherRows(logits, parents);
      logits.dispose();
      logits = wide;
    }
    const onDevice = !c.do_sample && !stepLogits && args.decodeOnDevice !== false && deviceProcessorsCover(c);
    const dec = onDevice ? (model.deviceDecoder?.(book.sequences) ?? null) : null;
    if (dec) {
      const first = logits;
      logits = null;
      const lookahead = args.lookahead ?? defaultLookahead(first.gpu.caps.isSoftware);
      await greedyOnDevice(book, first, dec, c, budget, lookahead, args.metrics);
      return book.result();
    }
    const now = () => performance.now();
    const gpu = logits.gpu;
    const dispatched = () => (args.metrics ? gpu.stats().dispatches : 0);
    const m = { record: 0, recordSteps: [] as number[], bookkeeping: 0, steps: 0, dispatches: 0, t0: now() };
    for (;;) {
      if (stepLogits) stepLogits.push((await logits.read()) as Float32Array);
      let s = now();
      processLogitsGpu(logits, book.sequences, L, c, c.do_sample);
      let stepRecord = now() - s;
      const picked = rngFor ? await pickSampled(logits, c, rngFor) : await pickGreedy(logits);
      logits.dispose();
      logits = null;
      s = now();
      book.push(picked);
      m.bookkeeping += now() - s;
      if (book.done) break;
      s = now();
      const d0 = dispatched();
      logits = model.step(book.lastTokens());
      m.dispatches += dispatched() - d0;
      stepRecord += now() - s;
      m.record += stepRecord;
      m.recordSteps.push(stepRecord);
      m.steps++;
    }
    if (args.metrics) {
      Object.assign(args.metrics, {
        mode: 'host',
        lookahead: 0,
        steps: m.steps,
        dispatches: m.dispatches,
        hostRecordMs: m.record,
        hostRecordStepMs: m.recordSteps,
        hostBookkeepingMs: m.bookkeeping,
        readbackWaits: m.steps,
        wallMs: now() - m.t0,
      } satisfies DecodeMetrics);
    }
  } finally {
    logits?.dispose();
  }
  return book.result(stepLogits);
}
