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
 * Browser decoder: the browser's own codecs through `createImageBitmap`. `colorSpaceConversion: 'none'`
 * keeps the browser from applying the embedded ICC profile (PIL ignores it). `imageOrientation: 'none'` asks
 * for no EXIF rotation (PIL applies none), but browsers that treat 'none' as the newer 'from-image' still
 * rotate. The bitmap is read back through a WebGL2 texture, which keeps the samples unpremultiplied, so the
 * colour under translucent and transparent pixels survives exactly as PIL reads it; a 2D canvas (the fallback
 * without WebGL2, or for images over its texture size) stores premultiplied alpha and only approximates those
 * colours. 16-bit PNGs are reduced by the browser, not as PIL does.
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
      const rgba = readUnpremultiplied(bitmap) ?? readThroughCanvas(bitmap);
      // Opaque PNG colour types keep PIL's opaque mode: a tRNS colour key is ignored there.
      const png = header.png;
      if (png && (png.colorType === 2 || (png.colorType === 0 && png.bitDepth === 16))) return { width, height, channels: 4, data: forceOpaque(rgba) };
      return { width, height, channels: 4, data: rgba };
    } finally {
      bitmap.close();
    }
  },
};

let gl: WebGL2RenderingContext | null | undefined;

/** One WebGL2 context for every decode (browsers cap live contexts); null where there is none. */
function webgl(): WebGL2RenderingContext | null {
  if (gl?.isContextLost()) gl = undefined;
  if (gl === undefined) {
    try {
      gl = new OffscreenCanvas(1, 1).getContext('webgl2', { antialias: false, depth: false, stencil: false, premultipliedAlpha: false });
    } catch {
      gl = null;
    }
  }
  return gl;
}

/** RGBA as stored in the image, without premultiplication, via a WebGL2 texture; null when WebGL2 cannot do it. */
function readUnpremultiplied(bitmap: ImageBitmap): Uint8Array | null {
  const ctx = webgl();
  const { width, height } = bitmap;
  if (!ctx || width > ctx.getParameter(ctx.MAX_TEXTURE_SIZE) || height > ctx.getParameter(ctx.MAX_TEXTURE_SIZE)) return null;
  const texture = ctx.createTexture();
  const framebuffer = ctx.createFramebuffer();
  try {
    ctx.bindTexture(ctx.TEXTURE_2D, texture);
    ctx.pixelStorei(ctx.UNPACK_FLIP_Y_WEBGL, false);
    ctx.pixelStorei(ctx.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    ctx.pixelStorei(ctx.UNPACK_COLORSPACE_CONVERSION_WEBGL, ctx.NONE);
    ctx.texImage2D(ctx.TEXTURE_2D, 0, ctx.RGBA8, ctx.RGBA, ctx.UNSIGNED_BYTE, bitmap);
    ctx.bindFramebuffer(ctx.FRAMEBUFFER, framebuffer);
    ctx.framebufferTexture2D(ctx.FRAMEBUFFER, ctx.COLOR_ATTACHMENT0, ctx.TEXTURE_2D, texture, 0);
    if (ctx.checkFramebufferStatus(ctx.FRAMEBUFFER) !== ctx.FRAMEBUFFER_COMPLETE) return null;
    const rgba = new Uint8Array(width * height * 4);
    ctx.pixelStorei(ctx.PACK_ALIGNMENT, 1);
    // Row 0 of the texture is the image's top row, and readPixels returns row 0 first.
    ctx.readPixels(0, 0, width, height, ctx.RGBA, ctx.UNSIGNED_BYTE, rgba);
    return ctx.getError() === ctx.NO_ERROR ? rgba : null;
  } finally {
    ctx.bindFramebuffer(ctx.FRAMEBUFFER, null);
    ctx.deleteFramebuffer(framebuffer);
    ctx.deleteTexture(texture);
  }
}

function readThroughCanvas(bitmap: ImageBitmap): Uint8Array {
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new ImageInputError('unsupported', 'OffscreenCanvas has no 2d context');
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, width, height).data;
  return new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

function forceOpaque(rgba: Uint8Array): Uint8Array {
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  return rgba;
}
