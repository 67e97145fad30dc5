/**
 * The host's record of a greedy or sampled batch, as transformers' `_sample` keeps it: every row's input_ids so
 * far, its generated tokens and why it finished. A row that finished gets pad_token_id from then on (when an eos
 * criterion exists, as HF) and its later picks are dropped; streaming events go out as tokens are recorded.
 */
import type { GenerationConfig } from './config.js';
import type { StoppingCriteria } from './stopping.js';
import type { TokenStreamer } from './streamer.js';
import type { FinishReason, SearchResult } from './types.js';

export class RowBook {
  readonly sequences: number[][];
  readonly newTokens: number[][];
  readonly reasons: (FinishReason | null)[];
  private readonly hasEos: boolean;

  constructor(
    prompts: readonly (readonly number[])[],
    /** The prompt each row continues. */
    parents: readonly number[],
    private readonly c: GenerationConfig,
    private readonly stopping: StoppingCriteria,
    private readonly streamer: TokenStreamer | null,
  ) {
    this.sequences = parents.map((b) => [...prompts[b]!]);
    this.newTokens = this.sequences.map(() => []);
    this.reasons = new Array<FinishReason | null>(this.sequences.length).fill(null);
    this.hasEos = c.eos_token_id.length > 0;
  }

  get rows(): number {
    return this.sequences.length;
  }

  get done(): boolean {
    return this.reasons.every((x) => x !== null);
  }

  /** Records one step: row r picked `picked[r]`. */
  push(picked: ArrayLike<number>): void {
    for (let r = 0; r < this.rows; r++) {
      const done = this.reasons[r] !== null;
      // HF pads finished rows only when an eos criterion exists; without one a stopped row keeps its tokens.
      const token = done && this.hasEos ? this.c.pad_token_id! : picked[r]!;
      this.sequences[r]!.push(token);
      if (done) continue;
      this.newTokens[r]!.push(token);
      this.reasons[r] = this.stopping.check(this.newTokens[r]!, this.sequences[r]!.length);
      this.streamer?.push(r, token, this.newTokens[r]!, this.reasons[r] ?? null);
    }
  }

  /** The token each row feeds next (its last input id). */
  lastTokens(): number[] {
    return this.sequences.map((s) => s[s.length - 1]!);
  }

  result(stepLogits?: Float32Array[]): SearchResult {
    return { sequences: this.sequences, new_tokens: this.newTokens, finish_reasons: this.reasons as FinishReason[], ...(stepLogits ? { step_logits: stepLogits } : {}) };
  }
}
