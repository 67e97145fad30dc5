import { describe, expect, it } from 'vitest';
import { convertToRgb } from '../../src/processing/convert-rgb.js';
import { BlipImageProcessor } from '../../src/processing/image-processor.js';

describe('transparency, as transformers 5 handles it', () => {
  // Measured with transformers 5.17.0 (bench/device/hf_reference.py, rgba_convert): BlipImageProcessor turns an
  // RGBA pixel (200, 40, 90, alpha 64) into (200, 40, 90): alpha is dropped, not composited on white.
  const rgba = { width: 1, height: 1, channels: 4 as const, data: Uint8Array.from([200, 40, 90, 64]) };

  it('drops alpha by default', () => {
    expect(Array.from(convertToRgb(rgba).data)).toEqual([200, 40, 90]);
    expect(new BlipImageProcessor(BlipImageProcessor.fromJson({}).config).alpha).toBe('drop');
  });

  it('composites on white on request', () => {
    expect(Array.from(convertToRgb(rgba, 'white').data)).toEqual([241, 201, 214]);
  });
});
