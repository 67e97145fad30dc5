import type { Platform } from './types.js';
import { browserPlatform } from './browser.js';
import { isNode } from './host.js';

export type { Platform, ByteSource, ByteSink } from './types.js';

let current: Platform | null = null;

export { isNode };

/** The host platform: Node (Dawn) or the browser. The Node module is loaded lazily so bundles for browsers never see it. */
export async function getPlatform(): Promise<Platform> {
  if (current) return current;
  if (isNode()) {
    // A computed specifier keeps browser bundlers from following this import.
    const nodeModule = './node.js';
    const mod = (await import(/* @vite-ignore */ nodeModule)) as { nodePlatform: Platform };
    current = mod.nodePlatform;
  } else {
    current = browserPlatform;
  }
  return current;
}

/** Replaces the platform (embedding in another runtime, tests). */
export function setPlatform(p: Platform): void {
  current = p;
}
