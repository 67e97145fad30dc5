/**
 * Weight formats of the linear kernels' B operand, and the one quantization scheme (issue #11), stated
 * exactly so that it can be checked against transformers:
 * - A weight W [N, K] is cut row by row into groups of GROUP_SIZE consecutive input columns (the last group
 *   of a row may be shorter). Per group: s = f16(absmax / qmax) with absmax in f32, qmax 127 (q8) or 7 (q4);
 *   q = clamp(round_half_to_even(f32(w / f32(s))), -qmax, qmax), and q = 0 where s == 0. The model computes
 *   with w' = q * f32(s).
 * - Storage (on the GPU and in converted folders alike): every row holds ceil(K / 32) whole groups of codes,
 *   so a row starts at a group boundary and the scale of element e of a row is scale[e >> 5]. q8: one int8
 *   per code (two's complement). q4: two codes per byte, the even column in the low nibble, each a 4-bit
 *   two's complement number (-7..7). Codes past K are 0. Scales: binary16 bits in a parallel [N, groups] array.
 */
export type WeightFormat = 'f32' | 'f16' | 'q8' | 'q4';
export type QuantScheme = 'q8' | 'q4';

export const QUANT_SCHEMES: readonly QuantScheme[] = ['q8', 'q4'];
export const GROUP_SIZE = 32;
export const QMAX: Readonly<Record<QuantScheme, number>> = { q8: 127, q4: 7 };
/** Bits per code. */
export const CODE_BITS: Readonly<Record<QuantScheme, number>> = { q8: 8, q4: 4 };

export function isQuantScheme(s: unknown): s is QuantScheme {
  return s === 'q8' || s === 'q4';
}

/** Groups (and scales) per row of K columns. */
export function groupsPerRow(K: number): number {
  return Math.ceil(K / GROUP_SIZE);
}

/** Bytes one row of K columns takes in `format`: the one place byte sizes of weights are computed. */
export function rowBytes(format: WeightFormat, K: number): number {
  switch (format) {
    case 'f32':
      return 4 * K;
    case 'f16':
      return 2 * K;
    case 'q8':
    case 'q4':
      return (groupsPerRow(K) * GROUP_SIZE * CODE_BITS[format]) / 8;
  }
}

/** Codes per 32-bit word. */
export function codesPerWord(scheme: QuantScheme): number {
  return 32 / CODE_BITS[scheme];
}
