import type { TokenDecoder } from '../../src/generation/types.js';

/**
 * A tokenizer stand-in: token t decodes to one ASCII letter, except 30/31 (the two bytes of "é") and 32/33
 * (the three bytes of "€", split 2 + 1), so characters straddle tokens as in byte-level BPE; 1 and 2 decode
 * to nothing (pad, bos).
 */
export const byteDecoder: TokenDecoder & { bytes(t: number): number[] } = {
  bytes(t: number): number[] {
    const special: Record<number, number[]> = { 30: [0xc3], 31: [0xa9], 32: [0xe2, 0x82], 33: [0xac], 2: [], 1: [] };
    return special[t] ?? [0x61 + (t % 26)];
  },
  decode(ids: readonly number[]): string {
    return new TextDecoder().decode(Uint8Array.from(ids.flatMap((t) => this.bytes(t))));
  },
};
