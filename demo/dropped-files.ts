// Lets `Blip2.fromPretrained` read a model folder the user dropped or picked: the files are registered under
// a pseudo-URL folder, and a platform wrapper hands out Blob byte sources for names below it.
import { browserPlatform } from '../src/platform/browser.js';
import { setPlatform, type Platform } from '../src/platform/index.js';

/** The folder name `Blip2.fromPretrained` is given for dropped files. */
export const DROPPED_FOLDER = 'dropped://model';

let dropped = new Map<string, File>();

/** Installs the platform wrapper once; other locations go to the browser platform unchanged. */
export function installDroppedFilesPlatform(): void {
  const platform: Platform = {
    ...browserPlatform,
    async openBytes(location) {
      const name = typeof location === 'string' && location.startsWith(`${DROPPED_FOLDER}/`) ? location.slice(DROPPED_FOLDER.length + 1) : null;
      if (name === null) return browserPlatform.openBytes(location);
      const file = dropped.get(name);
      // "no such file" is what the config readers recognise as a missing optional file.
      if (!file) throw new Error(`${name}: no such file among the dropped files`);
      return browserPlatform.openBytes(file);
    },
  };
  setPlatform(platform);
}

/** Replaces the dropped model files; HF folders are flat, so files are known by their base names. */
export function setDroppedFiles(files: readonly File[]): string[] {
  dropped = new Map(files.map((f) => [f.name, f]));
  return [...dropped.keys()].sort();
}

/** Every file of a drop, folders walked recursively (Chromium and Firefox expose them as entries). */
export async function filesFromDrop(data: DataTransfer): Promise<File[]> {
  const entries = Array.from(data.items).map((item) => item.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => e !== null && e !== undefined);
  if (entries.length === 0) return Array.from(data.files);
  const files: File[] = [];
  for (const entry of entries) await walk(entry, files);
  return files;
}

async function walk(entry: FileSystemEntry, out: File[]): Promise<void> {
  if (entry.name.startsWith('.')) return; // .git, .cache: never model files
  if (entry.isFile) {
    out.push(await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)));
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns the listing in batches until it returns an empty one.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, out);
  }
}
