/**
 * Turns a growing list of token ids into text deltas for streaming, applying stop strings: a delta never
 * contains a stop string or the start of one that may still complete, nor half of a UTF-8 character.
 * The concatenated deltas always equal `text()`.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  private full = '';
  private emitted = 0;
  private stoppedAt = -1;
  private readonly longestStop: number;

  constructor(
    /** Decodes a whole sequence of new tokens (skipping special tokens). */
    private readonly decode: (ids: readonly number[]) => string,
    private readonly stops: readonly string[] = [],
    /** Drops leading whitespace (BPE answers start with a space). */
    private readonly trimStart = true,
  ) {
    this.longestStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  get stopped(): boolean {
    return this.stoppedAt >= 0;
  }

  get tokenIds(): readonly number[] {
    return this.ids;
  }

  /** Adds a token; returns the text that may be shown now. After a stop string appears, returns ''. */
  push(tokenId: number): string {
    if (this.stopped) return '';
    const searchFrom = Math.max(0, this.full.length - this.longestStop);
    this.ids.push(tokenId);
    this.full = this.decode(this.ids);
    if (this.trimStart) this.full = this.full.trimStart();
    const hit = this.findStop(searchFrom);
    if (hit >= 0) {
      this.stoppedAt = hit;
      return this.take(hit);
    }
    // Text that ends in a replacement character may be half of a multi-byte character.
    let safe = this.full.length;
    while (safe > this.emitted && this.full.charCodeAt(safe - 1) === 0xfffd) safe--;
    safe -= this.partialStopSuffix(this.full.slice(0, safe));
    return this.take(safe);
  }

  /** The rest of the text when generation ends (held-back characters are final now). */
  finish(): string {
    return this.take(this.stopped ? this.stoppedAt : this.full.length);
  }

  /** The text so far, cut before a stop string. */
  text(): string {
    return this.stopped ? this.full.slice(0, this.stoppedAt) : this.full;
  }

  private take(end: number): string {
    if (end <= this.emitted) return '';
    const delta = this.full.slice(this.emitted, end);
    this.emitted = end;
    return delta;
  }

  private findStop(from: number): number {
    let best = -1;
    for (const s of this.stops) {
      const i = this.full.indexOf(s, from);
      if (i >= 0 && (best < 0 || i < best)) best = i;
    }
    return best;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
  private partialStopSuffix(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let len = Math.min(s.length - 1, text.length); len > best; len--) {
        if (text.endsWith(s.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
