import type { ImageHeader } from './image-header.js';

/**
 * Decoded pixels in one of PIL's 8-bit modes, before any RGB conversion: 1 channel = `L`, 2 = `LA`,
 * 3 = `RGB`, 4 = `RGBA`. Rows are top to bottom, channels interleaved (HWC).
 */
export interface RawImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly data: Uint8Array;
}

export interface DecodeLimits {
  /** Largest width x height accepted; checked from the header before any pixel is decoded. */
  readonly maxPixels: number;
}

/**
 * A decoder back-end (sharp in Node, the browser's own decoder in browsers). It must hand back what
 * PIL's `Image.open` would hold for the same file, mapped to an 8-bit mode as PIL's `convert` does:
 * no ICC colour conversion, no EXIF rotation, 16-bit samples reduced the way PIL reduces them.
 */
export interface ImageDecoder {
  readonly name: string;
  /** `header` comes from `readImageHeader(bytes)`: format and size are already known and within limits. */
  decode(bytes: Uint8Array, header: ImageHeader, limits: DecodeLimits): Promise<RawImage>;
}
