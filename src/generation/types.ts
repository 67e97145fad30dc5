/** Shapes shared by the generation modules. */

/** Turns token ids into text; Blip2Tokenizer and Blip2Processor fit. */
export interface TokenDecoder {
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

/** Why a sequence ended: an eos token, a stop string, or the length limit. */
export type FinishReason = 'eos' | 'stop' | 'length';

/** One generated token of one output row, for streaming. */
export interface TokenEvent {
  /** Output row (input row * num_return_sequences + sample). */
  row: number;
  token: number;
  /**
   * The text this token adds, '' while it is held back (an incomplete UTF-8 character, or text that may
   * turn out to start a stop string). The deltas of a row concatenate to its final text.
   */
  text: string;
  /** Set on the row's last token. */
  finish_reason?: FinishReason;
}

export type OnToken = (event: TokenEvent) => void;

/** What a search returns, per output row. */
export interface SearchResult {
  /** input_ids + generated tokens (padded with pad_token_id after a row finished, as HF returns them). */
  sequences: number[][];
  /** The generated tokens of each row, without the padding added after it finished. */
  new_tokens: number[][];
  finish_reasons: FinishReason[];
  /** Beam search: sum of log-probs / generated_length ** length_penalty. */
  sequences_scores?: number[];
  /** Raw logits [rows, V] of every step (debugging and parity tests). */
  step_logits?: Float32Array[];
}

/** What a decode loop measured (benchmarks fill one in through the loop's `metrics` argument). */
export interface DecodeMetrics {
  /** 'device': tokens chosen on the device and read back through a ring; 'host': the host chooses every token. */
  mode: 'device' | 'host';
  /** Steps submitted ahead of the token read-back (device mode). */
  lookahead: number;
  /** Decode steps run after the prompt (one forward each). */
  steps: number;
  /** GPU dispatches those steps recorded or replayed. */
  dispatches: number;
  /** JavaScript time spent recording and submitting the steps, excluding every wait (ms, all steps). */
  hostRecordMs: number;
  /**
   * The same per step (ms): wall-clock time of synchronous code, so on a loaded machine a step's figure includes
   * the time its thread was descheduled; the smallest is the least disturbed.
   */
  hostRecordStepMs: number[];
  /** JavaScript time spent on the returned tokens: stopping criteria, streaming (ms, all steps). */
  hostBookkeepingMs: number;
  /** Steps that could only be submitted after the previous step's tokens had been read back. */
  readbackWaits: number;
  /** Wall time from the first step's submission to the last token's arrival (ms). */
  wallMs: number;
  /** Device mode: the dispatches of one step by kernel label. */
  dispatchesByKernel?: Record<string, number>;
}
