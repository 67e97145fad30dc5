import type { Sharp, SharpOptions } from 'sharp';
import { ImageInputError } from '../processing/errors.js';
import type { DecodeLimits, ImageDecoder, RawImage } from '../processing/image-decode.js';
import type { ImageHeader } from '../processing/image-header.js';

type SharpFactory = (input: Uint8Array, options: SharpOptions) => Sharp;

let sharpFactory: SharpFactory | null = null;

async function loadSharp(): Promise<SharpFactory> {
  if (sharpFactory) return sharpFactory;
  try {
    const mod = (await import('sharp')) as unknown as { default: SharpFactory };
    sharpFactory = mod.default;
  } catch (e) {
    throw new Error(`cannot load the 'sharp' package (image decoding in Node): ${(e as Error).message}. Run npm install.`);
  }
  return sharpFactory;
}

/** Turns libvips' messages into the typed error; the original stays as `cause`. */
function mapSharpError(e: unknown, header: ImageHeader): ImageInputError {
  const msg = e instanceof Error ? e.message : String(e);
  const what = `${header.format.toUpperCase()} ${header.width}x${header.height}`;
  if (/pixel limit/i.test(msg)) return new ImageInputError('too-large', `${what}: over the pixel limit`, { cause: e });
  if (/unsupported image format/i.test(msg)) return new ImageInputError('unsupported', `${what}: sharp cannot decode this file`, { cause: e });
  if (/premature end|truncat|end of (file|data|stream)|unexpected end|not enough data|short read|out of data/i.test(msg)) {
    return new ImageInputError('truncated', `truncated ${what}: ${msg.trim()}`, { cause: e });
  }
  return new ImageInputError('corrupt', `cannot decode ${what}: ${msg.trim()}`, { cause: e });
}

/** 16-bit samples to 8 bits the way PIL does it (see reduceTo8Bit). */
function highBytes(src: Uint16Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! >>> 8;
  return out;
}
function clipTo255(src: Uint16Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! > 255 ? 255 : src[i]!;
  return out;
}

function keepChannels(data: Uint8Array, channels: number, keep: readonly number[]): Uint8Array {
  const n = data.length / channels;
  const out = new Uint8Array(n * keep.length);
  for (let p = 0, d = 0; p < n; p++) for (const c of keep) out[d++] = data[p * channels + c]!;
  return out;
}

/**
 * libnsgif zeroes transparent GIF pixels; PIL keeps the palette entry of the transparent index, which is
 * what its `convert("RGB")` shows.
 */
function restoreTransparentColour(rgba: Uint8Array, rgb: readonly [number, number, number]): void {
  for (let i = 0; i < rgba.length; i += 4) {
    if (rgba[i + 3] === 0) (rgba[i] = rgb[0]), (rgba[i + 1] = rgb[1]), (rgba[i + 2] = rgb[2]);
  }
}

/**
 * Node decoder on sharp (libvips: libspng/libpng, mozjpeg, libwebp, libnsgif, libtiff). The embedded
 * ICC profile is ignored and EXIF orientation is not applied, as in PIL; only the first frame of an
 * animation is read. sharp refuses images over `limitInputPixels` from their header, but the size is
 * already checked from our own header parse before sharp sees the bytes.
 */
export const sharpImageDecoder: ImageDecoder = {
  name: 'sharp',
  async decode(bytes: Uint8Array, header: ImageHeader, limits: DecodeLimits): Promise<RawImage> {
    if (header.format === 'bmp') {
      throw new ImageInputError('unsupported', 'BMP images are not supported in Node (sharp has no BMP loader); convert the image to PNG');
    }
    const sharp = await loadSharp();
    const options: SharpOptions = { ignoreIcc: true, limitInputPixels: limits.maxPixels, failOn: 'warning', pages: 1, page: 0 };
    try {
      const meta = await sharp(bytes, options).metadata();
      const gray = meta.space === 'b-w' || meta.space === 'grey16';
      const sixteen = meta.depth === 'ushort';
      let pipeline = sharp(bytes, options);
      // sharp's default output is 8-bit sRGB; 16-bit samples are asked for explicitly because PIL reduces
      // them its own way (below). Gray images keep their single band only without alpha.
      if (sixteen) pipeline = pipeline.toColourspace(gray && !meta.hasAlpha ? 'grey16' : 'rgb16');
      const { data, info } = await pipeline.raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
      if (info.width !== header.width || info.height !== header.height) {
        throw new ImageInputError('corrupt', `${header.format} header says ${header.width}x${header.height} but the decoder produced ${info.width}x${info.height}`);
      }
      let channels = info.channels as number;
      let pixels: Uint8Array;
      if (sixteen) {
        const words = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
        // PIL opens 16-bit gray PNGs as mode I;16 and clips to 255 when converting to 8 bits; every other
        // 16-bit layout (RGB, RGBA, gray+alpha) is unpacked by keeping the high byte of each sample.
        pixels = channels === 1 ? clipTo255(words) : highBytes(words);
      } else {
        pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      }
      if (gray && channels >= 3) {
        // sharp replicated the gray band into R, G and B: keep one (and the alpha).
        pixels = keepChannels(pixels, channels, channels === 4 ? [0, 3] : [0]);
        channels = channels === 4 ? 2 : 1;
      }
      // PIL keeps RGB (and 16-bit gray) PNGs with a tRNS colour key in their opaque mode: no alpha at all.
      const png = header.png;
      if (png?.hasTransparencyChunk && (png.colorType === 2 || (png.colorType === 0 && png.bitDepth === 16)) && (channels === 4 || channels === 2)) {
        pixels = keepChannels(pixels, channels, channels === 4 ? [0, 1, 2] : [0]);
        channels -= 1;
      }
      const trns = header.gif?.transparentColor;
      if (trns && channels === 4) restoreTransparentColour(pixels, trns);
      if (channels < 1 || channels > 4) throw new ImageInputError('unsupported', `${header.format}: ${channels}-channel images are not supported`);
      return { width: info.width, height: info.height, channels: channels as RawImage['channels'], data: pixels };
    } catch (e) {
      if (e instanceof ImageInputError) throw e;
      throw mapSharpError(e, header);
    }
  },
};
