/** Stop strings (OpenAI semantics: cut before the match) and streamed text deltas over split UTF-8 characters. */
import { describe, expect, it } from 'vitest';
import { StoppingCriteria, findStop, partialStopSuffix } from '../../src/generation/stopping.js';
import { TokenStreamer } from '../../src/generation/streamer.js';
import type { TokenEvent } from '../../src/generation/types.js';
import { byteDecoder } from './byte-decoder.js';

const A = 0; // 'a'
const B = 1 + 26; // 'b'
const X = 23; // 'x'
const E1 = 30; // first byte of 'é'
const E2 = 31;
const EURO12 = 32; // first two bytes of '€'
const EURO3 = 33;
const EOS = 5;

function stream(tokens: number[], stop: string[] = [], maxLength = 100): { events: TokenEvent[]; criteria: StoppingCriteria } {
  const criteria = new StoppingCriteria(maxLength, [EOS], stop, byteDecoder);
  const events: TokenEvent[] = [];
  const s = new TokenStreamer(1, criteria, (e) => events.push(e));
  const generated: number[] = [];
  for (const t of tokens) {
    generated.push(t);
    const reason = criteria.check(generated, generated.length);
    s.push(0, t, generated, reason);
    if (reason) break;
  }
  return { events, criteria };
}

describe('stop string helpers', () => {
  it('find the earliest stop, and the tail that could start one', () => {
    expect(findStop('hello world', ['wor', 'lo'])).toBe(3);
    expect(findStop('hello', ['x'])).toBe(-1);
    expect(partialStopSuffix('abc\n', ['\n\n'])).toBe(1);
    expect(partialStopSuffix('abcQue', ['Question:'])).toBe(3);
    expect(partialStopSuffix('abcQux', ['Question:'])).toBe(0);
    expect(partialStopSuffix('abc Que', [' Question:'])).toBe(4);
    expect(partialStopSuffix('abc', [])).toBe(0);
  });

  it('criteria report eos before stop before length; text excludes the eos token and the stop string', () => {
    const c = new StoppingCriteria(5, [EOS], ['xa'], byteDecoder);
    expect(c.check([A, EOS], 3)).toBe('eos');
    expect(c.check([B, X, A], 3)).toBe('stop');
    expect(c.check([B, X], 5)).toBe('length');
    expect(c.check([B, X], 4)).toBeNull();
    expect(c.text([B, X, A, B])).toEqual({ text: 'b', stopped: true });
    expect(c.text([B, A, EOS])).toEqual({ text: 'ba', stopped: false });
    expect(() => new StoppingCriteria(5, [EOS], ['x'])).toThrow(/tokenizer/);
  });
});

describe('streamer', () => {
  it('holds back split UTF-8 characters and the deltas add up to the text', () => {
    const tokens = [A, E1, E2, EURO12, EURO3, B, EOS];
    const { events } = stream(tokens);
    expect(events.map((e) => e.text)).toEqual(['a', '', 'é', '', '€', 'b', '']);
    expect(events.map((e) => e.token)).toEqual(tokens);
    expect(events.at(-1)!.finish_reason).toBe('eos');
    expect(events.map((e) => e.text).join('')).toBe(byteDecoder.decode(tokens.slice(0, -1)));
  });

  it('an incomplete character at the end is flushed as U+FFFD, like the final decode', () => {
    const { events } = stream([A, E1], [], 2);
    expect(events.map((e) => e.text)).toEqual(['a', '\uFFFD']);
    expect(events.at(-1)!.finish_reason).toBe('length');
  });

  it('never streams a stop string, and releases a false start', () => {
    const stopped = stream([A, E1, E2, X, B], ['éx']);
    expect(stopped.events.map((e) => e.text)).toEqual(['a', '', '', '']);
    expect(stopped.events.at(-1)!.finish_reason).toBe('stop');
    const released = stream([A, E1, E2, B, EOS], ['éx']);
    expect(released.events.map((e) => e.text)).toEqual(['a', '', '', 'éb', '']);
  });

  it('without a tokenizer it still reports tokens (with empty text)', () => {
    const criteria = new StoppingCriteria(3, [EOS]);
    const events: TokenEvent[] = [];
    new TokenStreamer(1, criteria, (e) => events.push(e)).push(0, 7, [7], null);
    expect(events).toEqual([{ row: 0, token: 7, text: '' }]);
  });
});
