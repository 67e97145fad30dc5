import { describe, expect, it } from 'vitest';
import { computeAxisTaps, resizeBicubicAntialiasU8 } from '../../src/processing/resize.js';
import { rng } from '../helpers.js';

/** Plain float64 separable antialiased bicubic (a = -0.5), no fixed point, rounding once per pass. */
function referenceResize(src: Uint8Array, w: number, h: number, ch: number, ow: number, oh: number): Uint8Array {
  const cubic = (x: number) => {
    x = Math.abs(x);
    if (x < 1) return (1.5 * x - 2.5) * x * x + 1;
    if (x < 2) return ((-0.5 * x + 2.5) * x - 4) * x + 2;
    return 0;
  };
  const weights = (inSize: number, outSize: number) => {
    const scale = inSize / outSize;
    const support = 2 * Math.max(scale, 1);
    return Array.from({ length: outSize }, (_, i) => {
      const center = (i + 0.5) * scale;
      const lo = Math.max(0, Math.floor(center - support + 0.5));
      const hi = Math.min(inSize, Math.floor(center + support + 0.5));
      const ws = [];
      for (let j = lo; j < hi; j++) ws.push(cubic((j - center + 0.5) / Math.max(scale, 1)));
      const total = ws.reduce((a, b) => a + b, 0);
      return { lo, ws: ws.map((x) => x / total) };
    });
  };
  const clamp = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
  let cur = src;
  let cw = w;
  if (ow !== w) {
    const wx = weights(w, ow);
    const out = new Uint8Array(h * ow * ch);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < ow; x++)
        for (let c = 0; c < ch; c++) {
          let acc = 0;
          wx[x]!.ws.forEach((wt, j) => (acc += wt * cur[(y * w + wx[x]!.lo + j) * ch + c]!));
          out[(y * ow + x) * ch + c] = clamp(acc);
        }
    cur = out;
    cw = ow;
  }
  if (oh !== h) {
    const wy = weights(h, oh);
    const out = new Uint8Array(oh * cw * ch);
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < cw; x++)
        for (let c = 0; c < ch; c++) {
          let acc = 0;
          wy[y]!.ws.forEach((wt, j) => (acc += wt * cur[((wy[y]!.lo + j) * cw + x) * ch + c]!));
          out[(y * cw + x) * ch + c] = clamp(acc);
        }
    cur = out;
  }
  return cur;
}

function randomImage(w: number, h: number, ch: number, seed: number): Uint8Array {
  const r = rng(seed);
  // Smooth-ish content plus noise, so both flat and busy regions are exercised.
  return Uint8Array.from({ length: w * h * ch }, (_, i) => {
    const p = Math.floor(i / ch);
    const x = p % w;
    const y = Math.floor(p / w);
    return Math.min(255, Math.floor(128 + 100 * Math.sin(x / 3 + (i % ch)) * Math.cos(y / 5) + 40 * (r() - 0.5)));
  });
}

describe('resizeBicubicAntialiasU8', () => {
  const shapes: [number, number, number, number][] = [
    [37, 23, 7, 5], // downscale
    [7, 5, 33, 19], // upscale (no antialias widening)
    [88, 1, 13, 1], // single row
    [1, 57, 1, 9], // single column
    [257, 33, 56, 56], // mixed: down in x, up in y
    [30, 30, 30, 12], // vertical pass only
    [30, 30, 12, 30], // horizontal pass only
    [3, 3, 224, 224],
  ];
  for (const [w, h, ow, oh] of shapes) {
    // One pass: fixed-point weights move a value by at most one level. Two passes: a flipped rounding in the
    // first can be amplified by the cubic's overshoot in the second, so two levels, rarely.
    const twoPass = w !== ow && h !== oh;
    it(`${w}x${h} -> ${ow}x${oh} stays within ${twoPass ? 2 : 1} level(s) of a float64 reference`, () => {
      for (const ch of [1, 3]) {
        const src = randomImage(w, h, ch, w * 1000 + h);
        const out = resizeBicubicAntialiasU8(src, w, h, ch, ow, oh);
        const ref = referenceResize(src, w, h, ch, ow, oh);
        expect(out.length).toBe(ow * oh * ch);
        let worst = 0;
        let offByMoreThanOne = 0;
        for (let i = 0; i < out.length; i++) {
          const d = Math.abs(out[i]! - ref[i]!);
          worst = Math.max(worst, d);
          if (d > 1) offByMoreThanOne++;
        }
        expect(worst).toBeLessThanOrEqual(twoPass ? 2 : 1);
        expect(offByMoreThanOne).toBeLessThanOrEqual(out.length / 1000);
      }
    });
  }

  it('returns an equal copy when the size does not change', () => {
    const src = randomImage(9, 4, 3, 1);
    const out = resizeBicubicAntialiasU8(src, 9, 4, 3, 9, 4);
    expect(out).toEqual(src);
    expect(out).not.toBe(src);
  });

  it('keeps a constant image constant (weights sum to one in fixed point)', () => {
    for (const v of [0, 1, 128, 254, 255]) {
      const out = resizeBicubicAntialiasU8(new Uint8Array(61 * 47).fill(v), 61, 47, 1, 17, 224);
      expect(out.every((x) => x === v)).toBe(true);
    }
  });

  it('int16 weights use the largest precision that does not overflow', () => {
    for (const [i, o] of [[451, 224], [300, 56], [56, 224], [2, 1], [1, 7]] as const) {
      const t = computeAxisTaps(i, o);
      expect(t.precision).toBeGreaterThan(0);
      expect(t.precision).toBeLessThanOrEqual(22);
      let max = 0;
      for (const w of t.weights) max = Math.max(max, w);
      expect(max).toBeLessThan(1 << 15);
      expect(max * 2).toBeGreaterThanOrEqual(1 << 15 - 1); // one more bit would not fit
      for (let k = 0; k < o; k++) {
        expect(t.start[k]! + t.size[k]!).toBeLessThanOrEqual(i);
        expect(t.size[k]).toBeGreaterThan(0);
      }
    }
  });

  it('rejects bad sizes and buffers', () => {
    expect(() => resizeBicubicAntialiasU8(new Uint8Array(5), 2, 2, 1, 1, 1)).toThrow(/expected 2x2x1/);
    expect(() => computeAxisTaps(0, 3)).toThrow(RangeError);
    expect(() => computeAxisTaps(3, 1.5)).toThrow(RangeError);
  });
});
