import { getPlatform } from '../platform/index.js';
import { decodeBase64, looksLikeBase64 } from './base64.js';
import { convertToRgb, type AlphaMode, type RgbImage } from './convert-rgb.js';
import { defaultImageDecoder } from './decoder.js';
import { ImageInputError } from './errors.js';
import type { ImageDecoder, RawImage } from './image-decode.js';
import { checkPixelLimit, looksTruncated, readImageHeader, sniffFormat } from './image-header.js';

/** Already-decoded pixels: 1 = gray (`L`), 2 = gray+alpha, 3 = RGB, 4 = RGBA; HWC, rows top to bottom. */
export interface RawPixels {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly data: Uint8Array | Uint8ClampedArray;
}

/**
 * Anything that names or holds an image: a file path (Node), an `http(s)://` URL, a `data:image/...;base64,`
 * URI, bare base64, encoded bytes (`Uint8Array`, `ArrayBuffer`, `Blob`) or decoded `RawPixels`.
 */
export type ImageInput = string | URL | Uint8Array | ArrayBuffer | Blob | RawPixels;

/** Fetches the bytes behind an image URL; servers inject one that enforces their address policy. */
export type FetchBytes = (url: string, limits: { maxBytes: number; timeoutMs: number }) => Promise<Uint8Array>;

export interface ImageLoadOptions {
  /** Largest width x height accepted, checked from the header before decoding (default 50 000 000). */
  maxPixels?: number;
  /** Largest encoded file accepted from a path, URL, Blob or base64 (default 64 MiB). */
  maxBytes?: number;
  /** Time limit for fetching a URL with the default fetcher (default 20 s). */
  fetchTimeoutMs?: number;
  /** How URLs are fetched (default: global fetch with the size and time limits). */
  fetchBytes?: FetchBytes;
  /** Decoder back-end (default: sharp in Node, the browser's codecs in browsers). */
  decoder?: ImageDecoder;
  /** How transparency becomes RGB (default `white`, see convert-rgb.ts). */
  alpha?: AlphaMode;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 20_000;

function isRawPixels(x: unknown): x is RawPixels {
  return typeof x === 'object' && x !== null && 'data' in x && 'width' in x && 'height' in x && 'channels' in x;
}

function tooManyBytes(what: string, n: number, maxBytes: number): ImageInputError {
  return new ImageInputError('too-large', `${what} is ${n} bytes, over the limit of ${maxBytes} bytes`);
}

/** Global fetch with a timeout and a byte cap enforced while streaming, not after. */
export const defaultFetchBytes: FetchBytes = async (url, { maxBytes, timeoutMs }) => {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (e) {
    const why = (e as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e as Error).message;
    throw new ImageInputError('fetch-failed', `cannot fetch ${url}: ${why}`, { cause: e });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new ImageInputError('fetch-failed', `cannot fetch ${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw tooManyBytes(`the image at ${url}`, declared, maxBytes);
  }
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooManyBytes(`the image at ${url}`, total, maxBytes);
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof ImageInputError) throw e;
    throw new ImageInputError('fetch-failed', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e });
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.byteLength));
  return out;
};

async function readFileBytes(location: string | URL, maxBytes: number): Promise<Uint8Array> {
  const platform = await getPlatform();
  let source;
  try {
    source = await platform.openBytes(location);
  } catch (e) {
    throw new ImageInputError('unreadable', `cannot read image file ${String(location)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    if (source.size > maxBytes) throw tooManyBytes(`image file ${source.name}`, source.size, maxBytes);
    return await source.read(0, source.size);
  } finally {
    await source.close();
  }
}

function parseDataUri(uri: string): Uint8Array {
  const comma = uri.indexOf(',');
  if (comma < 0) throw new ImageInputError('bad-input', 'malformed data: URI (no comma)');
  const meta = uri.slice(5, comma).toLowerCase();
  if (!meta.split(';').includes('base64')) throw new ImageInputError('bad-input', 'only base64 data: URIs are supported for images (data:image/...;base64,...)');
  const mime = meta.split(';')[0] ?? '';
  if (mime !== '' && !mime.startsWith('image/') && mime !== 'application/octet-stream') {
    throw new ImageInputError('bad-input', `data: URI has media type ${mime}, not an image`);
  }
  return decodeBase64(uri.slice(comma + 1));
}

/**
 * Resolves an input to encoded bytes or to raw pixels, without decoding. A string is a URL when it starts
 * with http(s)://, a data URI with data:, bare base64 when it is base64 that decodes to a known image
 * signature, and a file path otherwise.
 */
export async function loadImageSource(input: ImageInput, options: ImageLoadOptions = {}): Promise<Uint8Array | RawPixels> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof Blob !== 'undefined' && input instanceof Blob) {
    if (input.size > maxBytes) throw tooManyBytes('the image Blob', input.size, maxBytes);
    return new Uint8Array(await input.arrayBuffer());
  }
  if (isRawPixels(input)) return input;
  const url = input instanceof URL ? input : null;
  const text = url ? url.href : typeof input === 'string' ? input.trim() : null;
  if (text === null) throw new ImageInputError('bad-input', `unsupported image input of type ${typeof input}`);
  if (/^https?:\/\//i.test(text)) {
    const fetchBytes = options.fetchBytes ?? defaultFetchBytes;
    const limits = { maxBytes, timeoutMs: options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS };
    let bytes: Uint8Array;
    try {
      bytes = await fetchBytes(text, limits);
    } catch (e) {
      if (e instanceof ImageInputError) throw e;
      throw new ImageInputError('fetch-failed', `cannot fetch ${text}: ${(e as Error).message}`, { cause: e });
    }
    if (bytes.byteLength > maxBytes) throw tooManyBytes(`the image at ${text}`, bytes.byteLength, maxBytes);
    return bytes;
  }
  if (/^data:/i.test(text)) {
    if (text.length > (maxBytes * 4) / 3 + 1024) throw tooManyBytes('the data: URI', text.length, maxBytes);
    return parseDataUri(text);
  }
  if (url) return readFileBytes(url, maxBytes);
  if (text === '') throw new ImageInputError('bad-input', 'empty image path');
  if (looksLikeBase64(text)) {
    if (text.length > (maxBytes * 4) / 3 + 1024) throw tooManyBytes('the base64 image', text.length, maxBytes);
    const bytes = decodeBase64(text);
    if (sniffFormat(bytes)) return bytes;
  }
  return readFileBytes(text, maxBytes);
}

function checkRawPixels(p: RawPixels, maxPixels: number): RawImage {
  const { width, height, channels, data } = p;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new ImageInputError('bad-input', `raw pixels: width and height must be non-negative integers (got ${width}x${height})`);
  }
  if (width === 0 || height === 0) throw new ImageInputError('empty', `raw pixels: the image is ${width}x${height}`);
  if (![1, 2, 3, 4].includes(channels)) throw new ImageInputError('bad-input', `raw pixels: channels must be 1, 2, 3 or 4 (got ${channels})`);
  if (width * height > maxPixels) throw new ImageInputError('too-large', `raw pixels: ${width}x${height} is over the limit of ${maxPixels} pixels`);
  if (data.length !== width * height * channels) {
    throw new ImageInputError('bad-input', `raw pixels: ${data.length} bytes for ${width}x${height}x${channels} (expected ${width * height * channels})`);
  }
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { width, height, channels, data: bytes };
}

/** Decodes encoded image bytes to PIL-mode pixels, refusing oversized images from their header first. */
export async function decodeImageBytes(bytes: Uint8Array, options: ImageLoadOptions = {}): Promise<RawImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const header = readImageHeader(bytes);
  checkPixelLimit(header, maxPixels);
  const decoder = options.decoder ?? (await defaultImageDecoder());
  try {
    return await decoder.decode(bytes, header, { maxPixels });
  } catch (e) {
    if (e instanceof ImageInputError && e.code === 'corrupt' && looksTruncated(bytes, header.format)) {
      throw new ImageInputError('truncated', `truncated ${header.format.toUpperCase()}: the file ends before the image data does`, { cause: e });
    }
    throw e;
  }
}

/** Any input to PIL-mode pixels (gray, gray+alpha, RGB or RGBA), before the RGB conversion. */
export async function loadImage(input: ImageInput, options: ImageLoadOptions = {}): Promise<RawImage> {
  const source = await loadImageSource(input, options);
  if (source instanceof Uint8Array) return decodeImageBytes(source, options);
  return checkRawPixels(source, options.maxPixels ?? DEFAULT_MAX_PIXELS);
}

/** Any input to RGB uint8 HWC, with transformers' convert_rgb semantics. */
export async function loadRgbImage(input: ImageInput, options: ImageLoadOptions = {}): Promise<RgbImage> {
  return convertToRgb(await loadImage(input, options), options.alpha ?? 'drop');
}
