/**
 * Per-token streaming with text deltas. Byte-level BPE can split one UTF-8 character over several tokens;
 * until the rest arrives the decoded text ends in U+FFFD, and that tail is held back. Text that may be
 * the beginning of a stop string is held back too, so a stop string never reaches the stream.
 */
import { partialStopSuffix, type StoppingCriteria } from './stopping.js';
import type { FinishReason, OnToken } from './types.js';

export class TokenStreamer {
  private emitted: string[];

  constructor(
    rows: number,
    private readonly stopping: StoppingCriteria,
    private readonly onToken: OnToken,
  ) {
    this.emitted = new Array<string>(rows).fill('');
  }

  /** Row `row` generated `token` (its generated tokens are now `generated`); `finish` when it was its last. */
  push(row: number, token: number, generated: readonly number[], finish: FinishReason | null): void {
    if (!this.stopping.canDecode) {
      this.onToken(finish ? { row, token, text: '', finish_reason: finish } : { row, token, text: '' });
      return;
    }
    const { text } = this.stopping.text(generated);
    let safe = text;
    if (!finish) {
      safe = safe.replace(/\uFFFD+$/u, '');
      safe = safe.slice(0, safe.length - partialStopSuffix(safe, this.stopping.stop));
    }
    const before = this.emitted[row]!;
    // Decoding is prefix-stable for byte-level BPE once incomplete characters are held back.
    const delta = safe.startsWith(before) ? safe.slice(before.length) : '';
    this.emitted[row] = before + delta;
    this.onToken(finish ? { row, token, text: delta, finish_reason: finish } : { row, token, text: delta });
  }
}
