import { ImageInputError } from '../processing/errors.js';
import type { DecodeLimits, ImageDecoder, RawImage } from '../processing/image-decode.js';
import type { ImageFormat, ImageHeader } from '../processing/image-header.js';

const MIME: Record<ImageFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  bmp: 'image/bmp',
  tiff: 'image/tiff',
};

/**
 * Browser decoder: the browser's own codecs through `createImageBitmap`, read back from an
 * OffscreenCanvas. `colorSpaceConversion: 'none'` keeps the browser from applying the embedded ICC
 * profile (PIL ignores it). `imageOrientation: 'none'` asks for no EXIF rotation (PIL applies none), but
 * browsers that treat 'none' as the newer 'from-image' still rotate. Other limits (docs/processing.md): a
 * 2D canvas stores premultiplied alpha, so the colour of nearly transparent pixels is approximate; 16-bit
 * PNGs are reduced by the browser, not as PIL does.
 */
export const browserImageDecoder: ImageDecoder = {
  name: 'browser',
  async decode(bytes: Uint8Array, header: ImageHeader, _limits: DecodeLimits): Promise<RawImage> {
    if (typeof createImageBitmap !== 'function' || typeof OffscreenCanvas === 'undefined') {
      throw new ImageInputError('unsupported', 'this environment has no createImageBitmap/OffscreenCanvas to decode images');
    }
    const copy = new Uint8Array(bytes); // a Blob part must not be a view on shared memory
    const blob = new Blob([copy], { type: MIME[header.format] });
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'none' });
    } catch (e) {
      throw new ImageInputError('corrupt', `the browser cannot decode this ${header.format} image: ${(e as Error).message}`, { cause: e });
    }
    try {
      const { width, height } = bitmap;
      if (width !== header.width || height !== header.height) {
        throw new ImageInputError('corrupt', `${header.format} header says ${header.width}x${header.height} but the browser decoded ${width}x${height}`);
      }
      const canvas = new OffscreenCanvas(width, height);
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      if (!ctx) throw new ImageInputError('unsupported', 'OffscreenCanvas has no 2d context');
      ctx.drawImage(bitmap, 0, 0);
      const pixels = ctx.getImageData(0, 0, width, height).data;
      const rgba = new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
      // Opaque PNG colour types keep PIL's opaque mode: a tRNS colour key is ignored there.
      const png = header.png;
      if (png && (png.colorType === 2 || (png.colorType === 0 && png.bitDepth === 16))) return { width, height, channels: 4, data: forceOpaque(rgba) };
      return { width, height, channels: 4, data: rgba };
    } finally {
      bitmap.close();
    }
  },
};

function forceOpaque(rgba: Uint8Array): Uint8Array {
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return rgba;
}
