import { ModelStorageError } from '../platform/model-store/types.js';
import { fileExists, readJsonFile } from './text-file.js';
import { SafetensorsError, SafetensorsFile, type TensorInfo, type TensorSource } from './safetensors.js';

/** Joins a folder (path or URL) and a file name. */
export function joinPath(dir: string, file: string): string {
  return dir.endsWith('/') ? dir + file : `${dir}/${file}`;
}

/**
 * A checkpoint split over several safetensors files by `model.safetensors.index.json` (HF's layout).
 * Every shard is opened (and checked against the index) up front.
 */
export class ShardedCheckpoint implements TensorSource {

  private constructor(
    private readonly dir: string,
    private readonly weightMap: Map<string, string>,
    private readonly shards: Map<string, SafetensorsFile>,
  ) {}

  static async open(indexPath: string): Promise<ShardedCheckpoint> {
    const index = (await readJsonFile(indexPath)) as { weight_map?: unknown };
    const wm = index?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
      throw new SafetensorsError(`${indexPath}: no weight_map object`);
    }
    const dir = indexPath.includes('/') ? indexPath.slice(0, indexPath.lastIndexOf('/')) : '.';
    const weightMap = new Map<string, string>();
    for (const [k, v] of Object.entries(wm)) {
      if (typeof v !== 'string' || v.includes('/') || v.includes('\\') || v.startsWith('.')) {
        throw new SafetensorsError(`${indexPath}: bad shard name for '${k}': ${JSON.stringify(v)}`);
      }
      weightMap.set(k, v);
    }
    // Open every shard now: their headers must agree with the index.
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const shard of new Set(weightMap.values())) shards.set(shard, await SafetensorsFile.open(joinPath(dir, shard)));
      for (const [k, shard] of weightMap) {
        if (!shards.get(shard)!.has(k)) throw new SafetensorsError(`${indexPath}: '${k}' is listed in ${shard} but that file does not hold it`);
      }
    } catch (e) {
      await Promise.all([...shards.values()].map((s) => s.close()));
      throw e;
    }
    return new ShardedCheckpoint(dir, weightMap, shards);
  }

  private file(name: string): SafetensorsFile {
    const shard = this.weightMap.get(name);
    if (!shard) throw new SafetensorsError(`${this.dir}: no tensor named '${name}'`);
    return this.shards.get(shard)!;
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }
  has(name: string): boolean {
    return this.weightMap.has(name);
  }
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }
  readBytes(name: string, start?: number, length?: number): Promise<Uint8Array> {
    return this.file(name).readBytes(name, start, length);
  }
  readBytesInto(name: string, start: number, target: Uint8Array): Promise<void> {
    return this.file(name).readBytesInto(name, start, target);
  }
  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((s) => s.close()));
  }
}

/**
 * Opens the weights of a HF model folder (local path or URL): `model.safetensors.index.json` when present,
 * else `model.safetensors`.
 */
export async function openCheckpoint(dir: string): Promise<TensorSource> {
  const index = joinPath(dir, 'model.safetensors.index.json');
  if (await fileExists(index)) return ShardedCheckpoint.open(index);
  try {
    return await SafetensorsFile.open(joinPath(dir, 'model.safetensors'));
  } catch (e) {
    // A broken file, or a store that could not keep it (quota, interrupted download), says so itself.
    if (e instanceof SafetensorsError || e instanceof ModelStorageError) throw e;
    throw new SafetensorsError(`${dir}: found neither model.safetensors.index.json nor a readable model.safetensors (${(e as Error).message})`);
  }
}
