/**
 * The pipeline's streamed deltas keep the answer's leading space (and any trailing one) while its final text is
 * trimmed; this keeps the streamed text equal to the final text.
 */
export class TrimmedDeltas {
  private started = false;
  private pendingSpace = '';

  push(delta: string): string {
    let text = delta;
    if (!this.started) {
      text = text.trimStart();
      if (!text) return '';
      this.started = true;
    }
    const joined = this.pendingSpace + text;
    this.pendingSpace = /\s*$/.exec(joined)![0];
    return joined.slice(0, joined.length - this.pendingSpace.length);
  }
}
