// Runs in the browser page: quantized weights through the same loader as in Node, from a converted folder and
// quantized while loading a float one, both fetched by URL.
import { getGpu } from '../../src/gpu/gpu.js';
import { setShaderBaseUrl } from '../../src/gpu/shader-sources.js';
import { Blip2 } from '../../src/pipeline.js';
import type { QuantScheme } from '../../src/quant/format.js';

export interface QuantizedTestOptions {
  shaders: string;
  image: string;
  maxNewTokens: number;
  /** Folders to load (URLs), each with the quantize option to pass (none: the folder's own scheme). */
  loads: { model: string; quantize?: QuantScheme }[];
}

export interface QuantizedRun {
  schemes: string[];
  captionTokens: number[];
  liveBytesLoaded: number;
  liveBytesAfterDispose: number;
  loadMs: number;
}

async function run(options: QuantizedTestOptions): Promise<{ runs: QuantizedRun[]; error?: string }> {
  setShaderBaseUrl(options.shaders);
  const gpu = await getGpu();
  const runs: QuantizedRun[] = [];
  for (const { model, quantize } of options.loads) {
    const t0 = performance.now();
    const blip2 = await Blip2.fromPretrained(model, { dtype: 'f32', quantize });
    const loadMs = performance.now() - t0;
    const schemes = [...new Set(blip2.model.namedParameters().map(([, p]) => p.quantized?.scheme ?? p.data.constructor.name))];
    const liveBytesLoaded = gpu.stats().liveBytes;
    const caption = await blip2.caption(options.image, { max_new_tokens: options.maxNewTokens });
    blip2.dispose();
    await gpu.sync();
    runs.push({ schemes, captionTokens: caption.token_ids, liveBytesLoaded, liveBytesAfterDispose: gpu.stats().liveBytes, loadMs });
  }
  return { runs };
}

(globalThis as { blip2QuantizedTest?: (o: QuantizedTestOptions) => Promise<{ runs: QuantizedRun[]; error?: string }> }).blip2QuantizedTest = (o) =>
  run(o).catch((e: unknown) => ({ runs: [], error: String((e as Error)?.stack ?? e) }));
