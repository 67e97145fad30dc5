/**
 * The Hugging Face hub cache layout, shared with Python's `huggingface_hub`:
 * `<cache>/models--org--name/{blobs/<etag>, refs/<revision>, snapshots/<commit>/<file> -> ../../blobs/<etag>}`.
 * Node only.
 */
import { mkdir, readFile, rename, rm, stat, symlink, copyFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/** `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. */
export function hubCacheDir(env: Env = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  return join(hfHome(env), 'hub');
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: Env = process.env): string {
  return env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
}

/** `HF_HUB_OFFLINE` as huggingface_hub reads it. */
export function isOfflineEnv(env: Env = process.env): boolean {
  return ['1', 'on', 'yes', 'true'].includes((env.HF_HUB_OFFLINE ?? '').trim().toLowerCase());
}

/** `HF_TOKEN`, else the token that `huggingface-cli login` stored (`$HF_TOKEN_PATH` or `$HF_HOME/token`). */
export async function hubToken(env: Env = process.env): Promise<string | undefined> {
  const direct = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (direct?.trim()) return direct.trim();
  try {
    const stored = (await readFile(env.HF_TOKEN_PATH ?? join(hfHome(env), 'token'), 'utf8')).trim();
    return stored || undefined;
  } catch {
    return undefined;
  }
}

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** Folder of one model repo in the cache. */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, 'snapshots', commit);
}

export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, 'blobs', etag);
}

/** The commit a revision points at in the cache, or null when it was never resolved. */
export async function readRef(repoDir: string, revision: string): Promise<string | null> {
  if (COMMIT_HASH.test(revision)) return revision;
  try {
    const commit = (await readFile(join(repoDir, 'refs', revision), 'utf8')).trim();
    return COMMIT_HASH.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const path = join(repoDir, 'refs', revision);
  await mkdir(dirname(path), { recursive: true });
  // Written beside and renamed, so a reader never sees half a commit id.
  await writeFile(`${path}.tmp`, commit);
  await rename(`${path}.tmp`, path);
}

/** True when `path` exists as a file (a symlink counts only when its blob exists). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Points `snapshots/<commit>/<file>` at its blob with a relative symlink; copies where symlinks are not allowed. */
export async function linkSnapshotFile(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    await copyFile(blob, pointer);
  }
}
