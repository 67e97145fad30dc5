import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantizeRef, getCode, quantizeRef, roundHalfEven, unpackCodes } from '../../src/cpu/quantize.js';
import { SafetensorsFile, readFloat32 } from '../../src/io/safetensors.js';
import { viewAs } from '../../src/io/safetensors-dtypes.js';
import { GROUP_SIZE, QMAX, QUANT_SCHEMES, groupsPerRow, rowBytes } from '../../src/quant/format.js';
import { f16BitsToF32 } from '../../src/util/half.js';
import { fixtureDirs } from '../support/fixtures.js';
import { randn } from '../helpers.js';

describe('the reference quantizer', () => {
  it('rounds half to even, as torch.round does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.5, 3.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -4, 4]);
  });

  for (const scheme of QUANT_SCHEMES) {
    it(`${scheme}: codes within +-qmax, the group absmax at +-qmax, a short last group, all-zero groups, exact dequantization`, () => {
      const N = 5;
      const K = 75; // two whole groups and one of 11
      const w = randn(N * K, 3);
      w.fill(0, 2 * K, 3 * K); // row 2 all zero
      w.fill(0, 3 * K + 32, 3 * K + 64); // row 3, group 1 all zero
      const q = quantizeRef(w, N, K, scheme);
      expect(q.codes.length).toBe(N * rowBytes(scheme, K));
      expect(q.scales.length).toBe(N * groupsPerRow(K));
      const codes = unpackCodes(q);
      const qmax = QMAX[scheme];
      const back = dequantizeRef(q);
      for (let n = 0; n < N; n++) {
        for (let g = 0; g < groupsPerRow(K); g++) {
          const s = f16BitsToF32(q.scales[n * 3 + g]!);
          const ks = Array.from({ length: Math.min(GROUP_SIZE, K - g * GROUP_SIZE) }, (_, i) => g * GROUP_SIZE + i);
          const absmax = Math.max(...ks.map((k) => Math.abs(w[n * K + k]!)));
          if (absmax === 0) {
            expect(s).toBe(0);
            for (const k of ks) expect(codes[n * K + k]).toBe(0);
            continue;
          }
          // The scale is absmax / qmax rounded to f16, so the largest code is qmax (or qmax - 1 when rounded up).
          expect(Math.abs(s - absmax / qmax) / s).toBeLessThan(1e-3);
          expect(Math.max(...ks.map((k) => Math.abs(codes[n * K + k]!)))).toBeGreaterThanOrEqual(qmax - 1);
          for (const k of ks) {
            expect(Math.abs(codes[n * K + k]!)).toBeLessThanOrEqual(qmax);
            expect(back[n * K + k]).toBe(codes[n * K + k]! * s);
            expect(Math.abs(back[n * K + k]! - w[n * K + k]!)).toBeLessThanOrEqual(s / 2 + s * 1e-3);
          }
        }
        // Padding past K holds zero codes.
        const row = q.codes.subarray(n * rowBytes(scheme, K), (n + 1) * rowBytes(scheme, K));
        for (let k = K; k < groupsPerRow(K) * GROUP_SIZE; k++) expect(getCode(row, scheme, k)).toBe(0);
      }
    });
  }

  it('clamps to qmax when the f16 scale rounds down', () => {
    // absmax / 7 = 0.142857..., whose f16 is 0.1428 (below): 1 / 0.1428 = 7.0019 rounds to 7 anyway, so
    // pick values whose ratio crosses qmax + 0.5 only through the rounding of a tiny scale.
    const w = new Float32Array(32);
    w[0] = 7.5 * f16BitsToF32(1); // scale = f16(7.5 * 2^-24 / 7) rounds to the smallest subnormal: code 7.5 -> 8 -> clamped
    const q = quantizeRef(w, 1, 32, 'q4');
    expect(unpackCodes(q)[0]).toBe(7);
  });
});

describe('the quantizer equals transformers on the fixtures', () => {
  const dirs = fixtureDirs().filter((d) => existsSync(join(d, 'quantized.safetensors')));
  it('has fixtures with quantized references', () => {
    expect(dirs.length).toBeGreaterThan(0);
  });
  for (const dir of dirs) {
    it(`${dir.split('/').pop()}: codes and f16 scales bit for bit`, async () => {
      const ref = await SafetensorsFile.open(join(dir, 'quantized.safetensors'));
      const model = await SafetensorsFile.open(join(dir, 'model.safetensors'));
      try {
        const keys = ref.keys().filter((k) => k.endsWith('.q'));
        expect(keys.length).toBeGreaterThan(0);
        for (const key of keys) {
          const [scheme, ...rest] = key.split('.');
          const name = rest.slice(0, -1).join('.');
          if (scheme !== 'q8' && scheme !== 'q4') throw new Error(`unexpected key ${key}`);
          const [N, K] = model.info(name).shape as [number, number];
          const q = quantizeRef(await readFloat32(model, name), N, K, scheme);
          const wantCodes = viewAs('I8', await ref.readBytes(key)) as Int8Array;
          const wantScales = viewAs('F16', await ref.readBytes(`${scheme}.${name}.scales`)) as Uint16Array;
          expect(ref.info(`${scheme}.${name}.scales`).shape).toEqual([N, groupsPerRow(K)]);
          expect(Array.from(unpackCodes(q)), key).toEqual(Array.from(wantCodes));
          expect(Array.from(q.scales), key).toEqual(Array.from(wantScales));
        }
      } finally {
        await ref.close();
        await model.close();
      }
    });
  }
});

describe('the loader quantizer', () => {
  it('equals the reference bit for bit, edge cases included', async () => {
    const { quantizeRowsInto } = await import('../../src/quant/quantize-rows.js');
    const { f16BitsToF32: half } = await import('../../src/util/half.js');
    for (const scheme of QUANT_SCHEMES) {
      for (const [N, K] of [[7, 75], [4, 64], [3, 5], [2, 1000]] as const) {
        const w = randn(N * K, N + K, 3);
        w.fill(0, 0, Math.min(K, 40)); // a zero group
        w[K] = 1e-8; // a tiny group: a subnormal f16 scale
        // A group whose scale is exactly s = 2^-4 (absmax qmax * s) and whose other values sit exactly half-way
        // between two codes, (j + 0.5) * s: round half to even decides every one of them.
        const s = half(0x2c00);
        const qmax = QMAX[scheme];
        if (N > 2 && K >= 32) {
          w[2 * K] = qmax * s;
          for (let k = 1; k < 32; k++) w[2 * K + k] = ((k % (2 * qmax)) - qmax + 0.5) * s;
        }
        const ref = quantizeRef(w, N, K, scheme);
        const codes = new Uint8Array(N * rowBytes(scheme, K)).fill(0xaa); // stale data must be overwritten
        const scales = new Uint16Array(N * groupsPerRow(K));
        quantizeRowsInto(w, N, K, scheme, codes, scales);
        if (N > 2 && K >= 32) expect(ref.scales[2 * groupsPerRow(K)]).toBe(0x2c00);
        expect(Array.from(codes)).toEqual(Array.from(ref.codes));
        expect(Array.from(scales)).toEqual(Array.from(ref.scales));
      }
    }
  });

  it('rejects a group whose scale does not fit f16', async () => {
    const { quantizeRowsInto } = await import('../../src/quant/quantize-rows.js');
    const w = new Float32Array(32).fill(1e7);
    expect(() => quantizeRowsInto(w, 1, 32, 'q8', new Uint8Array(32), new Uint16Array(1))).toThrow(/beyond f16/);
    expect(() => quantizeRef(w, 1, 32, 'q8')).toThrow(/beyond f16/);
  });
});
