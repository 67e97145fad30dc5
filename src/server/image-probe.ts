/**
 * Reads an image's format and size from its header, without decoding it, so that requests with
 * unsupported or oversized images are refused before they cost any work.
 */

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

export const SUPPORTED_IMAGE_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'gif', 'webp'];

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
}

export class ImageProbeError extends Error {
  override readonly name = 'ImageProbeError';
  constructor(
    message: string,
    /** 'unknown_format': not an image we read; 'invalid': a known format with a broken header. */
    readonly kind: 'unknown_format' | 'invalid',
  ) {
    super(message);
  }
}

function startsWith(b: Uint8Array, sig: readonly number[], at = 0): boolean {
  if (b.length < at + sig.length) return false;
  return sig.every((v, i) => b[at + i] === v);
}

function ascii(b: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...b.subarray(at, at + len));
}

function need(b: Uint8Array, end: number, format: string): void {
  if (b.length < end) throw new ImageProbeError(`truncated ${format} header`, 'invalid');
}

function checked(format: ImageFormat, width: number, height: number): ImageInfo {
  if (!(width > 0 && height > 0)) throw new ImageProbeError(`${format} header gives an empty size ${width}x${height}`, 'invalid');
  return { format, width, height };
}

function probePng(b: Uint8Array, v: DataView): ImageInfo {
  need(b, 24, 'PNG');
  if (ascii(b, 12, 4) !== 'IHDR') throw new ImageProbeError('PNG does not start with an IHDR chunk', 'invalid');
  return checked('png', v.getUint32(16), v.getUint32(20));
}

function probeJpeg(b: Uint8Array, v: DataView): ImageInfo {
  let i = 2;
  for (;;) {
    need(b, i + 4, 'JPEG');
    if (b[i] !== 0xff) throw new ImageProbeError('JPEG marker expected', 'invalid');
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) throw new ImageProbeError('JPEG has no frame header before its scan', 'invalid');
    const len = v.getUint16(i + 2);
    if (len < 2) throw new ImageProbeError('JPEG segment length is invalid', 'invalid');
    // SOF0..SOF15 carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      need(b, i + 9, 'JPEG');
      return checked('jpeg', v.getUint16(i + 7), v.getUint16(i + 5));
    }
    i += 2 + len;
  }
}

function probeGif(b: Uint8Array, v: DataView): ImageInfo {
  need(b, 10, 'GIF');
  return checked('gif', v.getUint16(6, true), v.getUint16(8, true));
}

function probeWebp(b: Uint8Array, v: DataView): ImageInfo {
  need(b, 30, 'WebP');
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ') {
    if (!startsWith(b, [0x9d, 0x01, 0x2a], 23)) throw new ImageProbeError('WebP VP8 frame tag missing', 'invalid');
    return checked('webp', v.getUint16(26, true) & 0x3fff, v.getUint16(28, true) & 0x3fff);
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) throw new ImageProbeError('WebP VP8L signature missing', 'invalid');
    const bits = v.getUint32(21, true);
    return checked('webp', (bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
  }
  if (chunk === 'VP8X') {
    const w = (b[24]! | (b[25]! << 8) | (b[26]! << 16)) + 1;
    const h = (b[27]! | (b[28]! << 8) | (b[29]! << 16)) + 1;
    return checked('webp', w, h);
  }
  throw new ImageProbeError(`unknown WebP chunk '${chunk}'`, 'invalid');
}

/** Format and size of an encoded image; throws `ImageProbeError` for anything else. */
export function probeImage(bytes: Uint8Array): ImageInfo {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return probePng(bytes, v);
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return probeJpeg(bytes, v);
  if (bytes.length >= 6 && (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a')) return probeGif(bytes, v);
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return probeWebp(bytes, v);
  throw new ImageProbeError(`not a supported image (expected ${SUPPORTED_IMAGE_FORMATS.join(', ')})`, 'unknown_format');
}
