import { ImageInputError } from './errors.js';
import type { RawImage } from './image-decode.js';

/**
 * How transparency is turned into RGB:
 * - `white`: alpha-composite over opaque white with PIL's `Image.alpha_composite` integer arithmetic
 *   (what the fixtures' transformers pipeline is documented to do);
 * - `drop`: PIL's plain `convert("RGB")`, which discards alpha.
 */
export type AlphaMode = 'white' | 'drop';

/** An RGB uint8 image, HWC. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** PIL `alpha_composite(white, src)` for one channel value `v` with alpha `a` (1..255). */
function overWhite(v: number, a: number): number {
  // PIL: coef1 = a*255*255*128 / (a*255 + 255*(255-a)) = a*128 exactly when the background is opaque.
  const coef1 = a * 128;
  const coef2 = 255 * 128 - coef1;
  const tmp = v * coef1 + 255 * coef2 + (0x80 << 7);
  return (((tmp >>> 8) + tmp) >>> 8) >>> 7;
}

/** transformers' `convert_rgb`: gray is replicated, alpha handled per `alpha`. RGB input is copied. */
export function convertToRgb(img: RawImage, alpha: AlphaMode = 'drop'): RgbImage {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (data.length !== n * channels) {
    throw new ImageInputError('bad-input', `pixel buffer has ${data.length} bytes, expected ${width}x${height}x${channels} = ${n * channels}`);
  }
  const out = new Uint8Array(n * 3);
  if (channels === 3) {
    out.set(data);
    return { width, height, data: out };
  }
  const composite = alpha === 'white' && (channels === 2 || channels === 4);
  for (let p = 0, s = 0, d = 0; p < n; p++, s += channels, d += 3) {
    let r: number, g: number, b: number;
    if (channels <= 2) r = g = b = data[s]!;
    else (r = data[s]!), (g = data[s + 1]!), (b = data[s + 2]!);
    if (composite) {
      const a = data[s + channels - 1]!;
      if (a === 0) r = g = b = 255;
      else if (a !== 255) (r = overWhite(r, a)), (g = overWhite(g, a)), (b = overWhite(b, a));
    }
    out[d] = r;
    out[d + 1] = g;
    out[d + 2] = b;
  }
  return { width, height, data: out };
}
