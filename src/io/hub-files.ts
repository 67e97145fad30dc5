/**
 * Which files of a model repo BLIP-2 needs: configs, tokenizer and processor files, and the safetensors weights
 * (the shards named by the index, or the single file). PyTorch pickles (`pytorch_model.bin*`), model cards,
 * other weight formats and variants are skipped.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFile } from './hub-cache.js';

export { SINGLE_WEIGHTS, SUPPORT_FILES, WEIGHTS_INDEX } from './model-files.js';
import { SINGLE_WEIGHTS, WEIGHTS_INDEX } from './model-files.js';

/** Shard file names from a safetensors index, checked to be plain names inside the folder. */
export function shardsOfIndex(indexText: string, where: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(indexText);
  } catch (e) {
    throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${where}: no weight_map object`);
  const shards = new Set<string>();
  for (const v of Object.values(map)) {
    if (typeof v !== 'string' || !/^[\w.-]+\.safetensors$/.test(v) || v.startsWith('.')) {
      throw new Error(`${where}: bad shard name ${JSON.stringify(v)}`);
    }
    shards.add(v);
  }
  if (shards.size === 0) throw new Error(`${where}: the weight_map is empty`);
  return [...shards].sort();
}

/** Files of a local model folder that are missing before BLIP-2 can load from it ([] when complete). */
export async function missingModelFiles(dir: string): Promise<string[]> {
  const missing: string[] = [];
  const has = (f: string) => isFile(join(dir, f));
  if (!(await has('config.json'))) missing.push('config.json');
  if (await has(WEIGHTS_INDEX)) {
    const shards = shardsOfIndex(await readFile(join(dir, WEIGHTS_INDEX), 'utf8'), join(dir, WEIGHTS_INDEX));
    for (const s of shards) if (!(await has(s))) missing.push(s);
  } else if (!(await has(SINGLE_WEIGHTS))) {
    missing.push(`${SINGLE_WEIGHTS} (or ${WEIGHTS_INDEX} and its shards)`);
  }
  if (!(await has('tokenizer.json')) && !((await has('vocab.json')) && (await has('merges.txt')))) {
    missing.push('tokenizer.json (or vocab.json and merges.txt)');
  }
  if (!(await has('preprocessor_config.json')) && !(await has('processor_config.json'))) {
    missing.push('preprocessor_config.json (or processor_config.json)');
  }
  return missing;
}
