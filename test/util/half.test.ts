import { getFloat16, setFloat16 } from '@petamoriken/float16';
import { describe, expect, it } from 'vitest';
import { bf16ArrayToF16, f16ArrayToF32, f16BitsToF32, f32ArrayToF16, f32ToF16Bits } from '../../src/util/half.js';
import { rng } from '../helpers.js';

/** binary16 bits of x according to @petamoriken/float16. */
function refBits(x: number): number {
  const dv = new DataView(new ArrayBuffer(2));
  setFloat16(dv, 0, x);
  return dv.getUint16(0);
}

describe('half-precision conversions', () => {
  it('match @petamoriken/float16 on edge cases and random bit patterns', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const edge = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e9, -1e9, 2 ** -14, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -25, 6.1e-5, 1e-10, Infinity, -Infinity, 1.0009765625 + 2 ** -12, 1 + 3 * 2 ** -11];
    for (const x of edge) expect(f32ToF16Bits(x), String(x)).toBe(refBits(Math.fround(x)));
    const r = rng(7);
    for (let i = 0; i < 200000; i++) {
      u[0] = Math.floor(r() * 2 ** 32);
      const x = f[0]!;
      if (Number.isNaN(x)) {
        expect(f32ToF16Bits(x) & 0x7c00).toBe(0x7c00);
        expect(f32ToF16Bits(x) & 0x3ff).not.toBe(0);
        continue;
      }
      expect(f32ToF16Bits(x)).toBe(refBits(x));
    }
  });

  it('decodes every binary16 value like the library', () => {
    const dv = new DataView(new ArrayBuffer(2));
    const all = new Uint16Array(65536).map((_, i) => i);
    const out = f16ArrayToF32(all);
    for (let h = 0; h < 65536; h++) {
      dv.setUint16(0, h);
      const ref = getFloat16(dv, 0);
      if (Number.isNaN(ref)) expect(Number.isNaN(out[h])).toBe(true);
      else expect(Object.is(out[h], ref) || out[h] === ref).toBe(true);
      expect(Object.is(f16BitsToF32(h), out[h]) || Number.isNaN(out[h])).toBe(true);
    }
  });

  it('bulk conversions agree with the scalar ones; bf16 -> f16 rounds once', () => {
    const x = Float32Array.from([1.5, -2.25, 1e-6, 70000]);
    expect(Array.from(f32ArrayToF16(x))).toEqual(Array.from(x, f32ToF16Bits));
    // 0x3f81 is bf16 1.0078125: exactly representable in f16.
    expect(Array.from(bf16ArrayToF16(Uint16Array.from([0x3f81, 0x4780])))).toEqual([f32ToF16Bits(1.0078125), 0x7c00]);
  });
});
