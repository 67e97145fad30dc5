/**
 * The sampling PRNG: xoshiro128** seeded through splitmix32. Same seed, same draws, on every platform.
 * It cannot reproduce torch's generator (Philox/MT19937 plus torch.multinomial's own algorithm), so a seeded
 * run matches another run of this library, never a PyTorch run.
 */
export interface Random {
  /** A uniform double in [0, 1). */
  next(): number;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Xoshiro128 implements Random {
  private s: Uint32Array;

  /** Any integer seed (up to 2^53); its low and high 32 bits both matter. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    const hi = Math.floor(Math.abs(seed) / 2 ** 32);
    const mix = splitmix32((seed >>> 0) ^ Math.imul(hi, 0x27d4eb2d) ^ (seed < 0 ? 0x5bd1e995 : 0));
    this.s = Uint32Array.from([mix(), mix(), mix(), mix()]);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  private nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  next(): number {
    // 53 random bits: 27 from one draw, 26 from the next.
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seed from the platform's crypto source (Node and browsers both have globalThis.crypto). */
export function randomSeed(): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1];
}
