/**
 * The random stream of dropout (torch.manual_seed's role): each dropout call takes the next 53-bit seed from a
 * seeded generator on the host and the kernel derives its mask from it, so a run is reproducible from its seed.
 */
let state = 0x2545f491;

/** Seeds the stream. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`manualSeed: seed must be a safe integer, got ${seed}`);
  state = (seed ^ 0x2545f491) >>> 0;
}

function next32(): number {
  // mulberry32
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** The next dropout seed. */
export function nextSeed(): number {
  return (next32() & 0x1fffff) * 2 ** 32 + next32();
}

/** The stream's position, to replay it (checkpoint recomputation). */
export function getRngState(): number {
  return state;
}

export function setRngState(s: number): void {
  state = s >>> 0;
}
