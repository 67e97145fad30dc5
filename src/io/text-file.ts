import { getPlatform } from '../platform/index.js';

/** A whole small file (config, tokenizer) as text, from a path (Node) or URL. */
export async function readTextFile(location: string): Promise<string> {
  const src = await (await getPlatform()).openBytes(location);
  try {
    return new TextDecoder().decode(await src.read(0, src.size));
  } finally {
    await src.close();
  }
}

/** A JSON file, with the file named in parse errors. */
export async function readJsonFile(location: string): Promise<unknown> {
  const text = await readTextFile(location);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${location}: invalid JSON (${(e as Error).message})`);
  }
}

/** Whether a file exists and can be opened. */
export async function fileExists(location: string): Promise<boolean> {
  try {
    await (await (await getPlatform()).openBytes(location)).close();
    return true;
  } catch {
    return false;
  }
}
