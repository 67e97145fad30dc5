/**
 * Stopping criteria: the length limit (MaxLengthCriteria), eos tokens (EosTokenCriteria) and stop strings.
 *
 * Stop strings follow OpenAI's `stop`, not HF's StopStringCriteria: a sequence stops as soon as its decoded
 * generated text contains a stop string anywhere, and the returned text ends right before it (HF keeps
 * the stop string in the output). The token ids keep the token that completed the match.
 */
import type { FinishReason, TokenDecoder } from './types.js';

/** The earliest occurrence of any stop string in `text` (the longest one when several start there). */
export function findStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest suffix of `text` that is a proper prefix of a stop string (text to hold back). */
export function partialStopSuffix(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(s.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

export class StoppingCriteria {
  constructor(
    /** Prompt + generated ids at most. */
    readonly maxLength: number,
    readonly eos: readonly number[],
    readonly stop: readonly string[] = [],
    private readonly decoder?: TokenDecoder,
  ) {
    if (stop.length > 0 && !decoder) throw new Error('stop strings need a tokenizer to decode the generated text (pass `tokenizer`)');
  }

  get canDecode(): boolean {
    return this.decoder !== undefined;
  }

  /** The generated text: special tokens skipped, a final eos token left out. */
  rawText(generated: readonly number[]): string {
    if (!this.decoder) throw new Error('no tokenizer to decode with');
    const last = generated[generated.length - 1];
    const ids = last !== undefined && this.eos.includes(last) ? generated.slice(0, -1) : generated;
    return this.decoder.decode(ids, { skipSpecialTokens: true });
  }

  /** The generated text cut before the first stop string, and whether one was found. */
  text(generated: readonly number[]): { text: string; stopped: boolean } {
    const raw = this.rawText(generated);
    const at = findStop(raw, this.stop);
    return at >= 0 ? { text: raw.slice(0, at), stopped: true } : { text: raw, stopped: false };
  }

  /** Why a hypothesis of `length` ids whose generated part is `generated` ends now, or null. */
  check(generated: readonly number[], length: number): FinishReason | null {
    const last = generated[generated.length - 1];
    if (last !== undefined && this.eos.includes(last)) return 'eos';
    if (this.stop.length > 0 && findStop(this.rawText(generated), this.stop) >= 0) return 'stop';
    if (length >= this.maxLength) return 'length';
    return null;
  }
}
