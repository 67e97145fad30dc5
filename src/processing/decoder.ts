import { isNode } from '../platform/index.js';
import type { ImageDecoder } from './image-decode.js';

let cached: ImageDecoder | null = null;

/** The host's decoder: sharp in Node, createImageBitmap in browsers. Node's is loaded lazily so bundles never see it. */
export async function defaultImageDecoder(): Promise<ImageDecoder> {
  if (cached) return cached;
  if (isNode()) {
    // A computed specifier keeps browser bundlers from following this import.
    const nodeModule = '../platform/image-node.js';
    const mod = (await import(/* @vite-ignore */ nodeModule)) as { sharpImageDecoder: ImageDecoder };
    cached = mod.sharpImageDecoder;
  } else {
    const mod = await import('../platform/image-browser.js');
    cached = mod.browserImageDecoder;
  }
  return cached;
}
