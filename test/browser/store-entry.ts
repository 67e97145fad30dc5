// Runs in the browser page for model-store.test.ts: loads the model with the store on (or off), captions, and
// lists, deletes or damages stored files the way a failing disk or an interrupted write would.
import { getGpu } from '../../src/gpu/gpu.js';
import { setShaderBaseUrl } from '../../src/gpu/shader-sources.js';
import { Blip2 } from '../../src/pipeline.js';
import type { QuantScheme } from '../../src/quant/format.js';
import { partName } from '../../src/platform/model-store/download.js';
import { sha256Hex } from '../../src/platform/model-store/opfs.js';
import { deleteStoredModel, listStoredModels, modelStorageInfo, type ModelCacheSetting, type ModelStorageInfo, type StoredModel } from '../../src/platform/model-store/index.js';
import { setStorePartBytes } from '../../src/platform/model-store/store.js';

export interface VisitOptions {
  model: string;
  image: string;
  shaders: string;
  maxNewTokens: number;
  cache?: ModelCacheSetting;
  /** Quantize a float folder's weights while loading (a converted folder brings its own scheme). */
  quantize?: QuantScheme;
  /** Size of newly stored parts. */
  partBytes: number;
  /** Makes navigator.storage.estimate() report this during the load (a nearly full origin). */
  fakeEstimate?: { usage: number; quota: number };
}

export interface VisitResult {
  tokens: number[];
  /** The quantization schemes of the loaded parameters (empty for a float model). */
  schemes: string[];
  /** Files for which onDownload was called, with the last progress seen. */
  downloads: Record<string, { loadedBytes: number; totalBytes: number | null }>;
  loadMs: number;
  error?: { name: string; code?: string; message: string; stack?: string };
}

async function visit(o: VisitOptions): Promise<VisitResult> {
  setShaderBaseUrl(o.shaders);
  setStorePartBytes(o.partBytes);
  await getGpu();
  const downloads: VisitResult['downloads'] = {};
  const storage = navigator.storage as StorageManager & { estimate: StorageManager['estimate'] };
  const realEstimate = storage.estimate;
  if (o.fakeEstimate) storage.estimate = async () => ({ ...o.fakeEstimate });
  const t0 = performance.now();
  try {
    const blip2 = await Blip2.fromPretrained(o.model, {
      dtype: 'f32',
      cache: o.cache,
      quantize: o.quantize,
      onDownload: (p) => (downloads[p.file] = { loadedBytes: p.loadedBytes, totalBytes: p.totalBytes }),
    });
    const loadMs = performance.now() - t0;
    const schemes = [...new Set(blip2.model.namedParameters().flatMap(([, p]) => (p.quantized ? [p.quantized.scheme] : [])))];
    try {
      const caption = await blip2.caption(o.image, { max_new_tokens: o.maxNewTokens });
      return { tokens: caption.token_ids, schemes, downloads, loadMs };
    } finally {
      blip2.dispose();
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    return { tokens: [], schemes: [], downloads, loadMs: performance.now() - t0, error: { name: err.name, code: err.code, message: err.message, stack: err.stack } };
  } finally {
    storage.estimate = realEstimate;
  }
}

/** The stored part file of `file` in the model at `url` (the store's layout: folder named by the URL's hash). */
async function partHandle(url: string, file: string, part: number): Promise<FileSystemFileHandle> {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('blip2-webgpu-models');
  const folder = await root.getDirectoryHandle((await sha256Hex(new TextEncoder().encode(url))).slice(0, 32));
  return folder.getFileHandle(partName(file, part));
}

/** Cuts a stored part short, or flips one of its bytes (same size: only the SHA-256 can tell). */
async function damage(o: { url: string; file: string; part: number; how: 'truncate' | 'flip' }): Promise<number> {
  const handle = await partHandle(o.url, o.file, o.part);
  const before = await handle.getFile();
  const w = await handle.createWritable({ keepExistingData: true });
  if (o.how === 'truncate') await w.truncate(Math.floor(before.size / 2));
  else {
    const at = Math.floor(before.size / 3);
    const byte = new Uint8Array(await before.slice(at, at + 1).arrayBuffer());
    await w.write({ type: 'write', position: at, data: new Uint8Array([byte[0]! ^ 0x40]) });
  }
  await w.close();
  return (await handle.getFile()).size;
}

export interface StoreTestApi {
  visit(o: VisitOptions): Promise<VisitResult>;
  list(): Promise<StoredModel[]>;
  remove(url: string): Promise<boolean>;
  info(): Promise<ModelStorageInfo>;
  damage(o: { url: string; file: string; part: number; how: 'truncate' | 'flip' }): Promise<number>;
}

const api: StoreTestApi = { visit, list: listStoredModels, remove: deleteStoredModel, info: modelStorageInfo, damage };
(globalThis as { blip2Store?: StoreTestApi }).blip2Store = api;
