// Runs in the page for bench/browser-store-load.ts: loads a model folder by URL (over HTTP or through the model
// store) and hashes every loaded weight as read back from the GPU, so that the paths can be compared byte for byte.
import xxhash from 'xxhash-wasm';
import { getGpu } from '../src/gpu/gpu.js';
import { setShaderBaseUrl } from '../src/gpu/shader-sources.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';

export interface StoreLoadResult {
  loadMs: number;
  /** Bytes the store downloaded during the load. */
  downloadedBytes: number;
  /** xxHash64 over every parameter's bytes on the device, in model order. */
  weightsHash: string;
  liveBytes: number;
}

async function load(o: { model: string; shaders: string; dtype: 'f16' | 'f32'; cache: boolean }): Promise<StoreLoadResult> {
  setShaderBaseUrl(o.shaders);
  const gpu = await getGpu();
  const seen = new Map<string, { first: number; last: number }>();
  const t0 = performance.now();
  const model = await Blip2ForConditionalGeneration.fromPretrained(o.model, {
    gpu,
    dtype: o.dtype,
    cache: o.cache,
    onDownload: (p) => {
      const f = seen.get(p.file);
      if (f) f.last = p.loadedBytes;
      else seen.set(p.file, { first: p.loadedBytes, last: p.loadedBytes });
    },
  });
  const loadMs = performance.now() - t0;
  try {
    const hasher = (await xxhash()).create64();
    for (const [, p] of model.namedParameters()) {
      const t = p.value;
      const data = t.dtype === 'f16' ? await t.readF16Bits() : await t.read();
      hasher.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    return {
      loadMs,
      downloadedBytes: [...seen.values()].reduce((n, f) => n + f.last - f.first, 0),
      weightsHash: hasher.digest().toString(16),
      liveBytes: gpu.stats().liveBytes,
    };
  } finally {
    model.dispose();
  }
}

(globalThis as { storeLoad?: typeof load }).storeLoad = load;
