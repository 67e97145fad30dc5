import { f16BitsToF32, f32ToF16Bits } from '../util/half.js';
import { GROUP_SIZE, QMAX, groupsPerRow, rowBytes, type QuantScheme } from './format.js';

/** 1.5 * 2^52: adding and subtracting it rounds a double to an integer, half to even (|x| < 2^51). */
const ROUND = 6755399441055744;

/**
 * The loader's quantizer: `rows` rows of K float32 values (row-major, from `src`) into packed codes and f16
 * scale bits, in the layout of src/quant/format.ts, bit for bit what the reference (src/cpu/quantize.ts)
 * gives. Written for speed (billions of values while a checkpoint streams in): no allocation, the round
 * half to even of a magic-number add, division kept (w / s, not w * (1 / s): the scheme is defined by it).
 */
export function quantizeRowsInto(src: Float32Array, rows: number, K: number, scheme: QuantScheme, codes: Uint8Array, scales: Uint16Array): void {
  const qmax = QMAX[scheme];
  const G = groupsPerRow(K);
  const rb = rowBytes(scheme, K);
  if (src.length < rows * K || codes.length < rows * rb || scales.length < rows * G) throw new RangeError('quantizeRowsInto: buffers too small');
  codes.fill(0, 0, rows * rb);
  const q4 = scheme === 'q4';
  const signed = new Int8Array(codes.buffer, codes.byteOffset, codes.length);
  for (let n = 0; n < rows; n++) {
    const w0 = n * K;
    const c0 = n * rb;
    for (let g = 0; g < G; g++) {
      const k0 = w0 + g * GROUP_SIZE;
      const k1 = Math.min(w0 + K, k0 + GROUP_SIZE);
      let absmax = 0;
      for (let k = k0; k < k1; k++) {
        const a = Math.abs(src[k]!);
        if (a > absmax) absmax = a;
      }
      const s32 = Math.fround(absmax / qmax);
      if (!(s32 <= 65504)) throw new RangeError(`quantize: a group's absmax ${absmax} gives a scale beyond f16's range`);
      const bits = f32ToF16Bits(s32);
      scales[n * G + g] = bits;
      const s = f16BitsToF32(bits);
      if (s === 0) continue; // codes stay 0
      const out = c0 + g * (q4 ? GROUP_SIZE / 2 : GROUP_SIZE);
      if (q4) {
        // Two codes per byte, the even column low.
        for (let k = k0, o = out; k < k1; k += 2, o++) {
          let lo = Math.fround(src[k]! / s) + ROUND - ROUND;
          lo = lo > 7 ? 7 : lo < -7 ? -7 : lo;
          let hi = k + 1 < k1 ? Math.fround(src[k + 1]! / s) + ROUND - ROUND : 0;
          hi = hi > 7 ? 7 : hi < -7 ? -7 : hi;
          codes[o] = (lo & 0xf) | ((hi & 0xf) << 4);
        }
      } else {
        for (let k = k0, o = out; k < k1; k++, o++) {
          const q = Math.fround(src[k]! / s) + ROUND - ROUND;
          signed[o] = q > 127 ? 127 : q < -127 ? -127 : q;
        }
      }
    }
  }
}
