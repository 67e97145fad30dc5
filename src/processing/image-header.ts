import { ImageInputError } from './errors.js';

export type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp' | 'tiff';

/** What a PNG's IHDR/tRNS say; PIL's mode (and so the RGB conversion) depends on these. */
export interface PngInfo {
  readonly bitDepth: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA. */
  readonly colorType: number;
  readonly interlaced: boolean;
  readonly hasTransparencyChunk: boolean;
}

/** The first GIF frame's transparent colour: PIL keeps it as the RGB of transparent pixels. */
export interface GifInfo {
  readonly transparentColor: readonly [number, number, number] | null;
}

export interface ImageHeader {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  readonly png?: PngInfo;
  readonly gif?: GifInfo;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(b: Uint8Array, sig: readonly number[], at = 0): boolean {
  if (b.length < at + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[at + i] !== sig[i]) return false;
  return true;
}

function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

/** The format named by the file's magic bytes, or null. */
export function sniffFormat(b: Uint8Array): ImageFormat | null {
  if (startsWith(b, PNG_SIGNATURE)) return 'png';
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return 'webp';
  if (b.length >= 2 && ascii(b, 0, 2) === 'BM') return 'bmp';
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  return null;
}

function truncated(format: ImageFormat): never {
  throw new ImageInputError('truncated', `truncated ${format.toUpperCase()}: the file ends inside its header`);
}

function be32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
function be16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}
function le16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}
function le24(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
}
function le32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function pngHeader(b: Uint8Array): ImageHeader {
  if (b.length < 33) truncated('png');
  if (ascii(b, 12, 4) !== 'IHDR') throw new ImageInputError('corrupt', 'corrupt PNG: the first chunk is not IHDR');
  const width = be32(b, 16);
  const height = be32(b, 20);
  const bitDepth = b[24]!;
  const colorType = b[25]!;
  const interlaced = b[28] === 1;
  const validDepths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  if (!validDepths[colorType]?.includes(bitDepth)) {
    throw new ImageInputError('corrupt', `corrupt PNG: colour type ${colorType} with bit depth ${bitDepth}`);
  }
  // tRNS must precede the first IDAT; walk the chunk list up to there.
  let hasTransparencyChunk = false;
  let at = 8;
  while (at + 8 <= b.length) {
    const len = be32(b, at);
    const type = ascii(b, at + 4, 4);
    if (type === 'IDAT' || type === 'IEND') break;
    if (type === 'tRNS') hasTransparencyChunk = true;
    at += 12 + len;
  }
  return { format: 'png', width, height, png: { bitDepth, colorType, interlaced, hasTransparencyChunk } };
}

function gifHeader(b: Uint8Array): ImageHeader {
  if (b.length < 13) truncated('gif');
  const width = le16(b, 6);
  const height = le16(b, 8);
  let palette: Uint8Array | null = null;
  let at = 13;
  if (b[10]! & 0x80) {
    const n = 3 << ((b[10]! & 7) + 1);
    palette = b.subarray(at, at + n);
    at += n;
  }
  // Walk the blocks up to the first image: its graphic control extension names the transparent index and
  // its local colour table, if any, replaces the global one.
  let transparentIndex = -1;
  while (at < b.length) {
    const block = b[at]!;
    if (block === 0x21) {
      if (b[at + 1] === 0xf9 && at + 7 <= b.length && b[at + 3]! & 1) transparentIndex = b[at + 6]!;
      at += 2;
      while (at < b.length && b[at] !== 0) at += b[at]! + 1;
      at += 1;
    } else if (block === 0x2c) {
      if (at + 10 > b.length) break;
      if (b[at + 9]! & 0x80) palette = b.subarray(at + 10, at + 10 + (3 << ((b[at + 9]! & 7) + 1)));
      break;
    } else {
      break;
    }
  }
  let transparentColor: GifInfo['transparentColor'] = null;
  if (palette && transparentIndex >= 0 && transparentIndex * 3 + 2 < palette.length) {
    const i = transparentIndex * 3;
    transparentColor = [palette[i]!, palette[i + 1]!, palette[i + 2]!];
  }
  return { format: 'gif', width, height, gif: { transparentColor } };
}

const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function jpegHeader(b: Uint8Array): ImageHeader {
  let at = 2;
  for (;;) {
    // Markers may be preceded by any number of 0xFF fill bytes.
    while (at < b.length && b[at] === 0xff) at++;
    if (at >= b.length) truncated('jpeg');
    const marker = b[at]!;
    at++;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue;
    if (marker === 0xd9 || marker === 0xda) {
      throw new ImageInputError('corrupt', 'corrupt JPEG: image data starts before any frame header (SOF)');
    }
    if (at + 2 > b.length) truncated('jpeg');
    const len = be16(b, at);
    if (len < 2) throw new ImageInputError('corrupt', 'corrupt JPEG: bad segment length');
    if (JPEG_SOF.has(marker)) {
      if (at + 7 > b.length) truncated('jpeg');
      return { format: 'jpeg', height: be16(b, at + 3), width: be16(b, at + 5) };
    }
    at += len;
  }
}

function webpHeader(b: Uint8Array): ImageHeader {
  if (b.length < 30) truncated('webp');
  const chunk = ascii(b, 12, 4);
  const d = 20; // chunk payload
  if (chunk === 'VP8X') return { format: 'webp', width: le24(b, d + 4) + 1, height: le24(b, d + 7) + 1 };
  if (chunk === 'VP8L') {
    if (b[d] !== 0x2f) throw new ImageInputError('corrupt', 'corrupt WebP: bad VP8L signature');
    const bits = le32(b, d + 1);
    return { format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8 ') {
    if (b[d + 3] !== 0x9d || b[d + 4] !== 0x01 || b[d + 5] !== 0x2a) throw new ImageInputError('corrupt', 'corrupt WebP: bad VP8 start code');
    return { format: 'webp', width: le16(b, d + 6) & 0x3fff, height: le16(b, d + 8) & 0x3fff };
  }
  throw new ImageInputError('corrupt', `corrupt WebP: unexpected first chunk '${chunk}'`);
}

function tiffHeader(b: Uint8Array): ImageHeader {
  const little = b[0] === 0x49;
  const u16 = (at: number) => (little ? le16(b, at) : be16(b, at));
  const u32 = (at: number) => (little ? le32(b, at) : be32(b, at));
  if (b.length < 8) truncated('tiff');
  const ifd = u32(4);
  if (ifd + 2 > b.length) truncated('tiff');
  const n = u16(ifd);
  let width = -1;
  let height = -1;
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > b.length) truncated('tiff');
    const tag = u16(e);
    const type = u16(e + 2);
    const value = type === 3 ? u16(e + 8) : u32(e + 8);
    if (tag === 256) width = value;
    if (tag === 257) height = value;
  }
  if (width < 0 || height < 0) throw new ImageInputError('corrupt', 'corrupt TIFF: no image size in the first directory');
  return { format: 'tiff', width, height };
}

/**
 * Format and dimensions from the first bytes of a file, without decoding pixels, so that oversized
 * images are refused before any large allocation. Throws `ImageInputError` for anything else.
 */
export function readImageHeader(b: Uint8Array): ImageHeader {
  if (b.length === 0) throw new ImageInputError('not-an-image', 'the image is empty (0 bytes)');
  const format = sniffFormat(b);
  let header: ImageHeader;
  switch (format) {
    case 'png':
      header = pngHeader(b);
      break;
    case 'jpeg':
      header = jpegHeader(b);
      break;
    case 'gif':
      header = gifHeader(b);
      break;
    case 'webp':
      header = webpHeader(b);
      break;
    case 'bmp':
      if (b.length < 26) truncated('bmp');
      header = { format, width: Math.abs(le32(b, 18) | 0), height: Math.abs(le32(b, 22) | 0) };
      break;
    case 'tiff':
      header = tiffHeader(b);
      break;
    default:
      throw new ImageInputError('not-an-image', 'not an image: the bytes match no supported format (PNG, JPEG, GIF, WebP, BMP, TIFF)');
  }
  if (header.width === 0 || header.height === 0) {
    throw new ImageInputError('empty', `the ${format} image is ${header.width}x${header.height}: it has no pixels`);
  }
  return header;
}

/** Throws `too-large` when the header's size exceeds the pixel budget. */
export function checkPixelLimit(header: ImageHeader, maxPixels: number): void {
  const pixels = header.width * header.height;
  if (pixels > maxPixels) {
    throw new ImageInputError(
      'too-large',
      `the ${header.format} image is ${header.width}x${header.height} (${pixels} pixels), over the limit of ${maxPixels} pixels`,
    );
  }
}

/**
 * Whether the file visibly ends early: a PNG whose chunk list runs past the end before IEND, or a WebP
 * shorter than its RIFF size. Used to name a decoder failure precisely; other formats return false.
 */
export function looksTruncated(b: Uint8Array, format: ImageFormat): boolean {
  if (format === 'png') {
    let at = 8;
    while (at + 8 <= b.length) {
      const len = be32(b, at);
      if (ascii(b, at + 4, 4) === 'IEND') return false;
      at += 12 + len;
    }
    return true;
  }
  if (format === 'webp') return b.length < 8 + le32(b, 4);
  return false;
}
