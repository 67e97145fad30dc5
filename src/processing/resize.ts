/**
 * Bicubic resize with antialiasing on uint8 images, bit-exact with PyTorch's CPU kernel for
 * `interpolate(uint8, mode="bicubic", antialias=True)` (the path torchvision's `resize` takes for uint8
 * tensors, and therefore transformers' default BLIP image processor).
 *
 * PyTorch computes PIL-style filter weights in float64, converts them to int16 fixed point with a
 * precision chosen from the largest weight, and accumulates in int32 (aten/src/ATen/native/cpu/
 * UpSampleKernel.cpp, `_compute_index_ranges_int16_weights`). It runs a horizontal pass first, rounding
 * to uint8, then a vertical pass. Reproducing each of those steps, not just the maths, is what makes
 * the result identical byte for byte.
 */

/** Integer filter taps for one axis: output i reads `size[i]` inputs from `start[i]`. */
export interface AxisTaps {
  readonly inSize: number;
  readonly outSize: number;
  readonly start: Int32Array;
  readonly size: Int32Array;
  /** `outSize * taps` int16 weights, `taps` per output. */
  readonly weights: Int16Array;
  readonly taps: number;
  /** Fixed-point precision: weights are scaled by 2^precision. */
  readonly precision: number;
}

/** Keys' cubic convolution kernel with a = -0.5, the value PIL (and torch's antialias path) uses. */
function cubicFilter(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** Float64 weights, then int16 fixed point, exactly as torch derives them for uint8 inputs. */
export function computeAxisTaps(inSize: number, outSize: number): AxisTaps {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new RangeError(`resize: sizes must be positive integers (got ${inSize} -> ${outSize})`);
  }
  const cubicSupport = 2; // interp_size (4) / 2
  const scale = inSize / outSize;
  const support = scale >= 1 ? cubicSupport * scale : cubicSupport;
  const taps = Math.ceil(support) * 2 + 1;
  const invScale = scale >= 1 ? 1 / scale : 1;

  const start = new Int32Array(outSize);
  const size = new Int32Array(outSize);
  const w64 = new Float64Array(outSize * taps);
  let wMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    // C++ static_cast<int64_t> truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    let xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    xsize = Math.min(Math.max(xsize, 0), taps);
    start[i] = xmin;
    size[i] = xsize;
    let total = 0;
    const row = i * taps;
    for (let j = 0; j < xsize; j++) {
      const w = cubicFilter((j + xmin - center + 0.5) * invScale);
      w64[row + j] = w;
      total += w;
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) {
        w64[row + j] /= total;
        if (w64[row + j]! > wMax) wMax = w64[row + j]!;
      }
    }
  }

  // The largest precision whose next step would overflow int16 for the largest weight.
  let precision = 0;
  for (; precision < 22; precision++) {
    const next = Math.trunc(0.5 + wMax * 2 ** (precision + 1));
    if (next >= 1 << 15) break;
  }
  const weights = new Int16Array(outSize * taps);
  const factor = 2 ** precision;
  for (let k = 0; k < w64.length; k++) {
    const v = w64[k]! * factor;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { inSize, outSize, start, size, weights, taps, precision };
}

function clampToByte(acc: number, precision: number): number {
  const v = acc >> precision;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * One separable pass over `lines` lines of an interleaved uint8 buffer. Elements along the resized axis
 * are `alongStride` apart; consecutive lines are `lineStride` apart; the `channels` interleaved values
 * of an element are filtered together (one weight fetch serves all of them).
 */
function resamplePass(
  src: Uint8Array,
  dst: Uint8Array,
  taps: AxisTaps,
  lines: number,
  channels: number,
  srcLineStride: number,
  srcAlong: number,
  dstLineStride: number,
  dstAlong: number,
): void {
  const { start, size, weights, precision, outSize } = taps;
  const tapCount = taps.taps;
  const half = 1 << (precision - 1);
  for (let line = 0; line < lines; line++) {
    const srcLine = line * srcLineStride;
    const dstLine = line * dstLineStride;
    for (let o = 0; o < outSize; o++) {
      const w0 = o * tapCount;
      const n = size[o]!;
      const s0 = srcLine + start[o]! * srcAlong;
      const d = dstLine + o * dstAlong;
      if (channels === 3) {
        // The RGB case, unrolled: one weight fetch for three accumulators.
        let a0 = half;
        let a1 = half;
        let a2 = half;
        for (let j = 0, s = s0; j < n; j++, s += srcAlong) {
          const w = weights[w0 + j]!;
          a0 += src[s]! * w;
          a1 += src[s + 1]! * w;
          a2 += src[s + 2]! * w;
        }
        dst[d] = clampToByte(a0, precision);
        dst[d + 1] = clampToByte(a1, precision);
        dst[d + 2] = clampToByte(a2, precision);
      } else {
        for (let c = 0; c < channels; c++) {
          let a = half;
          for (let j = 0, s = s0 + c; j < n; j++, s += srcAlong) a += src[s]! * weights[w0 + j]!;
          dst[d + c] = clampToByte(a, precision);
        }
      }
    }
  }
}

/**
 * Resizes an interleaved (HWC) uint8 image to `outHeight` x `outWidth`, bit-exact with torch's uint8
 * bicubic antialias kernel. Returns a new HWC buffer.
 */
export function resizeBicubicAntialiasU8(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  if (src.length !== width * height * channels) {
    throw new RangeError(`resize: buffer has ${src.length} bytes, expected ${width}x${height}x${channels}`);
  }
  let cur = src;
  let curWidth = width;
  if (outWidth !== width) {
    const taps = computeAxisTaps(width, outWidth);
    const out = new Uint8Array(height * outWidth * channels);
    resamplePass(cur, out, taps, height, channels, width * channels, channels, outWidth * channels, channels);
    cur = out;
    curWidth = outWidth;
  }
  if (outHeight !== height) {
    const taps = computeAxisTaps(height, outHeight);
    const rowBytes = curWidth * channels;
    const out = new Uint8Array(outHeight * rowBytes);
    // Lines are the columns (and channels): each column is filtered down the rows.
    resamplePass(cur, out, taps, curWidth, channels, channels, rowBytes, channels, rowBytes);
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}
