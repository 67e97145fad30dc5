import { f16BitsToF32, f32ToF16Bits } from '../util/half.js';
import { GROUP_SIZE, QMAX, groupsPerRow, rowBytes, type QuantScheme } from '../quant/format.js';

/**
 * Reference quantizer and dequantizer of the q8/q4 scheme (src/quant/format.ts states it), in obvious code:
 * the oracle of the fast quantizer, the kernels and the fixtures' codes and scales.
 */

export interface QuantizedRows {
  scheme: QuantScheme;
  N: number;
  K: number;
  /** N rows of rowBytes(scheme, K) bytes: packed codes, zero past K. */
  codes: Uint8Array;
  /** N x groupsPerRow(K) binary16 bits. */
  scales: Uint16Array;
}

/** Round half to even (what torch.round does). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // halves go up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The f16 scale of one group: f16(f32(absmax) / qmax). Throws when it does not fit binary16. */
export function groupScaleBits(absmax: number, qmax: number): number {
  const s = Math.fround(Math.fround(absmax) / qmax);
  if (!Number.isFinite(s) || s > 65504) throw new RangeError(`quantize: a group's absmax ${absmax} gives a scale beyond f16's range`);
  return f32ToF16Bits(s);
}

/** The code of w in a group of scale s (an f32 value): clamp(round_half_even(f32(w / s)), -qmax, qmax), 0 when s == 0. */
export function quantizeValue(w: number, s: number, qmax: number): number {
  if (s === 0) return 0;
  const q = roundHalfEven(Math.fround(w / s));
  return Math.min(qmax, Math.max(-qmax, q));
}

/** Writes code q (-qmax..qmax) of column k into a row's bytes. */
export function putCode(row: Uint8Array, scheme: QuantScheme, k: number, q: number): void {
  if (scheme === 'q8') row[k] = q & 0xff;
  else row[k >> 1]! |= (q & 0xf) << ((k & 1) * 4);
}

/** Code of column k of a row. */
export function getCode(row: Uint8Array, scheme: QuantScheme, k: number): number {
  if (scheme === 'q8') return (row[k]! << 24) >> 24;
  return (((row[k >> 1]! >> ((k & 1) * 4)) & 0xf) << 28) >> 28;
}

/** Quantizes a row-major [N, K] weight. */
export function quantizeRef(w: ArrayLike<number>, N: number, K: number, scheme: QuantScheme): QuantizedRows {
  if (w.length !== N * K) throw new RangeError(`quantizeRef: ${w.length} values for [${N}, ${K}]`);
  const qmax = QMAX[scheme];
  const G = groupsPerRow(K);
  const rb = rowBytes(scheme, K);
  const codes = new Uint8Array(N * rb);
  const scales = new Uint16Array(N * G);
  for (let n = 0; n < N; n++) {
    const row = codes.subarray(n * rb, (n + 1) * rb);
    for (let g = 0; g < G; g++) {
      const k0 = g * GROUP_SIZE;
      const k1 = Math.min(K, k0 + GROUP_SIZE);
      let absmax = 0;
      for (let k = k0; k < k1; k++) absmax = Math.max(absmax, Math.abs(Math.fround(w[n * K + k]!)));
      const bits = groupScaleBits(absmax, qmax);
      scales[n * G + g] = bits;
      const s = f16BitsToF32(bits);
      for (let k = k0; k < k1; k++) putCode(row, scheme, k, quantizeValue(Math.fround(w[n * K + k]!), s, qmax));
    }
  }
  return { scheme, N, K, codes, scales };
}

/** w' = q * f32(s), as [N, K] float32 (exactly representable: |q| <= 127 times an f16). */
export function dequantizeRef(q: QuantizedRows): Float32Array {
  const { N, K, scheme } = q;
  const G = groupsPerRow(K);
  const rb = rowBytes(scheme, K);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const row = q.codes.subarray(n * rb, (n + 1) * rb);
    for (let k = 0; k < K; k++) out[n * K + k] = getCode(row, scheme, k) * f16BitsToF32(q.scales[n * G + (k >> 5)]!);
  }
  return out;
}

/** The codes of a quantized weight as one int8 per column, [N, K] (the fixtures' `KEY.q` layout). */
export function unpackCodes(q: QuantizedRows): Int8Array {
  const rb = rowBytes(q.scheme, q.K);
  const out = new Int8Array(q.N * q.K);
  for (let n = 0; n < q.N; n++) {
    const row = q.codes.subarray(n * rb, (n + 1) * rb);
    for (let k = 0; k < q.K; k++) out[n * q.K + k] = getCode(row, q.scheme, k);
  }
  return out;
}
