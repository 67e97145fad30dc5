import { convertToRgb, type AlphaMode, type RgbImage } from './convert-rgb.js';
import { ImageInputError } from './errors.js';
import type { RawImage } from './image-decode.js';
import { loadImage, type ImageInput, type ImageLoadOptions } from './image-input.js';
import { resizeBicubicAntialiasU8 } from './resize.js';
import { parseImageProcessorConfig, validateImageProcessorConfig, type ImageProcessorConfig } from './config.js';

export interface PixelBatch {
  /** [B, 3, H, W] float32, row-major. */
  readonly pixelValues: Float32Array;
  readonly pixelShape: readonly [number, number, number, number];
}

/**
 * transformers' BlipImageProcessor with its default torchvision backend: convert to RGB, resize to
 * size.height x size.width (uint8 bicubic antialias, bit-exact with torch), then the fused
 * rescale+normalise `(x - mean/rescale) / (std/rescale)` in float32, as transformers computes it.
 */
export class BlipImageProcessor {
  readonly config: ImageProcessorConfig;
  /** Per channel, float32: mean and std already divided by the rescale factor (the library's fusion). */
  private readonly fusedMean: Float32Array;
  private readonly fusedStd: Float32Array;

  constructor(config: ImageProcessorConfig, readonly alpha: AlphaMode = 'drop') {
    validateImageProcessorConfig(config);
    this.config = config;
    const f = Math.fround;
    // torch: tensor(mean, float32) * (1 / rescale_factor) with the Python scalar rounded to float32 first.
    const inv = f(1 / config.rescaleFactor);
    this.fusedMean = Float32Array.from(config.imageMean, (m) => f(f(m) * inv));
    this.fusedStd = Float32Array.from(config.imageStd, (s) => f(f(s) * inv));
  }

  static fromJson(json: unknown, alpha: AlphaMode = 'drop'): BlipImageProcessor {
    return new BlipImageProcessor(parseImageProcessorConfig(json), alpha);
  }

  get height(): number {
    return this.config.size.height;
  }
  get width(): number {
    return this.config.size.width;
  }

  /** convert_rgb + resize: the uint8 CHW [3, H, W] image that transformers normalises. */
  resizeToU8(image: RawImage | RgbImage): Uint8Array {
    const rgb = 'channels' in image ? convertToRgb(image, this.alpha) : image;
    const { height, width } = this.config.size;
    const hwc = this.config.doResize ? resizeBicubicAntialiasU8(rgb.data, rgb.width, rgb.height, 3, width, height) : rgb.data;
    const outW = this.config.doResize ? width : rgb.width;
    const outH = this.config.doResize ? height : rgb.height;
    const plane = outW * outH;
    const chw = new Uint8Array(3 * plane);
    for (let p = 0; p < plane; p++) {
      chw[p] = hwc[p * 3]!;
      chw[plane + p] = hwc[p * 3 + 1]!;
      chw[2 * plane + p] = hwc[p * 3 + 2]!;
    }
    return chw;
  }

  /** Rescale and normalise one uint8 CHW image into `out` at `offset` (float32, bit-exact with transformers). */
  normalizeInto(chw: Uint8Array, out: Float32Array, offset = 0): void {
    const plane = chw.length / 3;
    const f = Math.fround;
    const { doRescale, doNormalize } = this.config;
    const scale = f(this.config.rescaleFactor);
    for (let c = 0; c < 3; c++) {
      const m = this.fusedMean[c]!;
      const s = this.fusedStd[c]!;
      const base = c * plane;
      for (let i = 0; i < plane; i++) {
        const x = chw[base + i]!;
        let v: number;
        if (doNormalize && doRescale) v = f(f(x - m) / s);
        else if (doNormalize) v = f(f(x - f(this.config.imageMean[c]!)) / f(this.config.imageStd[c]!));
        else if (doRescale) v = f(x * scale);
        else v = x;
        out[offset + base + i] = v;
      }
    }
  }

  /** A batch of decoded images to `pixel_values`. Without resizing, all images must share one size. */
  preprocess(images: readonly (RawImage | RgbImage)[]): PixelBatch {
    if (images.length === 0) throw new ImageInputError('bad-input', 'no images to preprocess');
    const h = this.config.doResize ? this.height : images[0]!.height;
    const w = this.config.doResize ? this.width : images[0]!.width;
    images.forEach((im, i) => {
      if (!this.config.doResize && (im.width !== w || im.height !== h)) {
        throw new ImageInputError('bad-input', `image ${i} is ${im.width}x${im.height}; without resizing every image must be ${w}x${h}`);
      }
    });
    const per = 3 * h * w;
    const chws = images.map((im) => this.resizeToU8(im));
    const pixelValues = new Float32Array(per * images.length);
    chws.forEach((c, i) => this.normalizeInto(c, pixelValues, i * per));
    return { pixelValues, pixelShape: [images.length, 3, h, w] };
  }

  /** Loads (path, URL, bytes, base64, ...) and preprocesses images. */
  async preprocessInputs(inputs: readonly ImageInput[], options: ImageLoadOptions = {}): Promise<PixelBatch> {
    const images = await Promise.all(inputs.map((input) => loadImage(input, options)));
    return this.preprocess(images);
  }
}
