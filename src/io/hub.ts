/**
 * Model download from the Hugging Face hub into the standard HF cache, and resolution of a `--model` value
 * (a local folder or a hub repo id) to a folder on disk. Node only.
 *
 * A model whose revision is already in the cache with every needed file is used without any request. The hub
 * API calls (commit of a revision, file list) go through `@huggingface/hub`; file bytes go through
 * `hub-transfer.ts`, which adds resume, progress and hash checks.
 */
import { HubApiError, listFiles, modelInfo } from '@huggingface/hub';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import {
  blobPath,
  hubCacheDir,
  hubToken,
  isFile,
  isOfflineEnv,
  linkSnapshotFile,
  readRef,
  repoCacheDir,
  snapshotDir,
  writeRef,
  type Env,
} from './hub-cache.js';
import { SINGLE_WEIGHTS, SUPPORT_FILES, WEIGHTS_INDEX, missingModelFiles, shardsOfIndex } from './hub-files.js';
import { downloadToBlob, type ExpectedContent } from './hub-transfer.js';

export const DEFAULT_MODEL = 'Salesforce/blip2-opt-2.7b';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface DownloadProgress {
  file: string;
  fileBytes: number;
  fileSize: number;
  /** Bytes of all files to fetch in this run, done so far and in total. */
  bytes: number;
  totalBytes: number;
}

export interface HubOptions {
  /** Branch, tag or commit; default 'main'. */
  revision?: string;
  /** Default: `HF_ENDPOINT` or https://huggingface.co. */
  endpoint?: string;
  /** Default: `HF_TOKEN` or the stored login token. */
  token?: string;
  /** Default: see `hubCacheDir`. */
  cacheDir?: string;
  /** Use the cache only; default: `HF_HUB_OFFLINE`. */
  offline?: boolean;
  /** Ask the hub for the revision's current commit even when the cache has a complete copy. */
  refresh?: boolean;
  /** Extra attempts per file after a cut connection (each resumes). Default 3. */
  retries?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Environment to read HF_* variables from; default `process.env`. */
  env?: Env;
  fetch?: typeof fetch;
}

export interface ResolvedModel {
  /** Folder with config, tokenizer and weights. */
  dir: string;
  /** The name to show: the repo id, or the folder as given. */
  modelId: string;
  source: 'local' | 'cache' | 'download';
  /** Commit of the snapshot (hub models only). */
  commit?: string;
  /** Files fetched in this run. */
  downloaded: string[];
}

export class HubError extends Error {
  override readonly name = 'HubError';
}

const REPO_ID = /^[\w.-]+(\/[\w.-]+)?$/;

interface RemoteFile {
  path: string;
  size: number;
  expected: ExpectedContent;
}

interface Settings {
  repoId: string;
  revision: string;
  endpoint: string;
  token: string | undefined;
  cacheDir: string;
  repoDir: string;
  options: HubOptions;
}

async function settingsFor(repoId: string, options: HubOptions): Promise<Settings> {
  if (!REPO_ID.test(repoId) || repoId.includes('..')) throw new HubError(`'${repoId}' is not a hub repo id (expected org/name)`);
  const env = options.env ?? process.env;
  const cacheDir = options.cacheDir ?? hubCacheDir(env);
  return {
    repoId,
    revision: options.revision ?? 'main',
    endpoint: (options.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    token: options.token ?? (await hubToken(env)),
    cacheDir,
    repoDir: repoCacheDir(cacheDir, repoId),
    options,
  };
}

/** The cached snapshot of the revision when it holds every needed file, else null. */
async function completeSnapshot(s: Settings): Promise<{ dir: string; commit: string } | null> {
  const commit = await readRef(s.repoDir, s.revision);
  if (!commit) return null;
  const dir = snapshotDir(s.repoDir, commit);
  try {
    return (await missingModelFiles(dir)).length === 0 ? { dir, commit } : null;
  } catch {
    return null; // a broken index in the cache: fetch again
  }
}

function explain(e: unknown, s: Settings): Error {
  if (e instanceof HubApiError) {
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new HubError(
        `the hub refused access to ${s.repoId} (HTTP ${e.statusCode}): the repo may be gated or private; set HF_TOKEN to a token with access`,
      );
    }
    if (e.statusCode === 404) return new HubError(`${s.repoId} (revision ${s.revision}) was not found on ${s.endpoint}`);
    return new HubError(`hub request failed: ${e.message}`);
  }
  if (e instanceof TypeError && /fetch failed/.test(e.message)) {
    const cause = (e.cause as { code?: string; message?: string } | undefined)?.code ?? (e.cause as Error | undefined)?.message;
    return new HubError(`cannot reach the hub at ${s.endpoint} (${cause ?? e.message}); set HF_HUB_OFFLINE=1 to use only the cache`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

function expectedOf(entry: { size: number; oid?: string; lfs?: { oid: string; size: number } }): ExpectedContent {
  if (entry.lfs) return { size: entry.lfs.size, hash: { algorithm: 'sha256', hex: entry.lfs.oid } };
  if (!entry.oid) throw new HubError('the hub listed a file without an id');
  return { size: entry.size, hash: { algorithm: 'git-sha1', hex: entry.oid } };
}

/** The commit of the revision and the repo's files, from the hub API. */
async function remoteListing(s: Settings): Promise<{ commit: string; files: Map<string, RemoteFile> }> {
  const common = { hubUrl: s.endpoint, accessToken: s.token, fetch: s.options.fetch };
  const info = await modelInfo({ ...common, name: s.repoId, revision: s.revision, additionalFields: ['sha'] });
  const commit = info.sha;
  if (typeof commit !== 'string' || !/^[0-9a-f]{40}$/.test(commit)) throw new HubError(`the hub gave no commit id for ${s.repoId}@${s.revision}`);
  const files = new Map<string, RemoteFile>();
  for await (const entry of listFiles({ ...common, repo: { type: 'model', name: s.repoId }, revision: commit, recursive: true })) {
    if (entry.type === 'file') files.set(entry.path, { path: entry.path, size: entry.lfs?.size ?? entry.size, expected: expectedOf(entry) });
  }
  return { commit, files };
}

/** Puts one file into the cache (blob + snapshot link), unless it is there already. */
async function fetchFile(s: Settings, commit: string, file: RemoteFile, onBytes: (n: number) => void): Promise<boolean> {
  const pointer = join(snapshotDir(s.repoDir, commit), file.path);
  if (await isFile(pointer)) return false;
  const blob = blobPath(s.repoDir, file.expected.hash.hex);
  if (!(await isFile(blob))) {
    await mkdir(join(s.repoDir, 'blobs'), { recursive: true });
    await downloadToBlob({
      url: `${s.endpoint}/${s.repoId}/resolve/${commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`,
      token: s.token,
      dest: blob,
      expected: file.expected,
      retries: s.options.retries ?? 3,
      onBytes,
      signal: s.options.signal,
      fetch: s.options.fetch,
    });
  }
  await linkSnapshotFile(blob, pointer);
  return true;
}

/** The files to fetch: support files that exist, then the weights (index + its shards, or the single file). */
async function plan(s: Settings, commit: string, files: Map<string, RemoteFile>, fetched: string[]): Promise<RemoteFile[]> {
  if (!files.has('config.json')) throw new HubError(`${s.repoId} has no config.json; is it a transformers model?`);
  const wanted = SUPPORT_FILES.filter((f) => files.has(f)).map((f) => files.get(f)!);
  const index = files.get(WEIGHTS_INDEX);
  if (index) {
    if (await fetchFile(s, commit, index, () => {})) fetched.push(index.path);
    const text = await readFile(join(snapshotDir(s.repoDir, commit), WEIGHTS_INDEX), 'utf8');
    for (const shard of shardsOfIndex(text, `${s.repoId}/${WEIGHTS_INDEX}`)) {
      const f = files.get(shard);
      if (!f) throw new HubError(`${s.repoId}: ${WEIGHTS_INDEX} names ${shard}, which the repo does not have`);
      wanted.push(f);
    }
  } else if (files.has(SINGLE_WEIGHTS)) {
    wanted.push(files.get(SINGLE_WEIGHTS)!);
  } else {
    throw new HubError(`${s.repoId} has no safetensors weights (${SINGLE_WEIGHTS} or ${WEIGHTS_INDEX}); PyTorch .bin checkpoints are not supported`);
  }
  return wanted;
}

/**
 * Makes sure the repo's revision is in the cache with everything BLIP-2 needs, downloading what is missing.
 * Returns the snapshot folder.
 */
export async function downloadModel(repoId: string, options: HubOptions = {}): Promise<ResolvedModel> {
  const s = await settingsFor(repoId, options);
  const env = options.env ?? process.env;
  const cached = await completeSnapshot(s);
  if (cached && !options.refresh) return { dir: cached.dir, modelId: repoId, source: 'cache', commit: cached.commit, downloaded: [] };
  if (options.offline ?? isOfflineEnv(env)) {
    if (cached) return { dir: cached.dir, modelId: repoId, source: 'cache', commit: cached.commit, downloaded: [] };
    const commit = await readRef(s.repoDir, s.revision);
    const missing = commit ? await missingModelFiles(snapshotDir(s.repoDir, commit)).catch(() => ['(unreadable index)']) : [];
    // Name the setting that blocks the download: `blip2 download` itself cannot help while it is set.
    const setting = options.offline === undefined ? `HF_HUB_OFFLINE=${env.HF_HUB_OFFLINE?.trim()} is set (offline mode)` : 'offline mode is on';
    const fix = options.offline === undefined ? 'unset HF_HUB_OFFLINE (or set it to 0) where the hub is reachable' : 'turn offline mode off where the hub is reachable';
    throw new HubError(
      `${repoId}@${s.revision} is not in the cache (${s.cacheDir})` +
        (missing.length ? `: missing ${missing.join(', ')}` : '') +
        `, and ${setting}, which forbids downloading it: ${fix} to download it (\`blip2 download ${repoId}\`)`,
    );
  }
  let listing;
  try {
    listing = await remoteListing(s);
  } catch (e) {
    if (cached) return { dir: cached.dir, modelId: repoId, source: 'cache', commit: cached.commit, downloaded: [] };
    throw explain(e, s);
  }
  const { commit, files } = listing;
  await mkdir(s.repoDir, { recursive: true });
  await writeRef(s.repoDir, s.revision, commit);
  const downloaded: string[] = [];
  try {
    const wanted = await plan(s, commit, files, downloaded);
    const snapshot = snapshotDir(s.repoDir, commit);
    const todo: RemoteFile[] = [];
    for (const f of wanted) if (!(await isFile(join(snapshot, f.path)))) todo.push(f);
    const totalBytes = todo.reduce((n, f) => n + f.size, 0);
    let doneBefore = 0;
    for (const f of todo) {
      const report = (fileBytes: number) =>
        options.onProgress?.({ file: f.path, fileBytes, fileSize: f.size, bytes: doneBefore + fileBytes, totalBytes });
      if (await fetchFile(s, commit, f, report)) downloaded.push(f.path);
      doneBefore += f.size;
    }
    const missing = await missingModelFiles(snapshot);
    if (missing.length) throw new HubError(`${repoId}@${commit} lacks files BLIP-2 needs: ${missing.join(', ')}`);
    return { dir: snapshot, modelId: repoId, source: downloaded.length ? 'download' : 'cache', commit, downloaded };
  } catch (e) {
    throw explain(e, s);
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * `--model` to a folder: an existing local folder is used as it is (it must hold a complete model); anything
 * else that looks like `org/name` is looked up in the cache and downloaded when needed.
 */
export async function resolveModel(model: string, options: HubOptions = {}): Promise<ResolvedModel> {
  if (await isDirectory(model)) {
    const dir = resolvePath(model);
    const missing = await missingModelFiles(dir);
    if (missing.length) throw new HubError(`the model folder ${dir} lacks ${missing.join(', ')}`);
    return { dir, modelId: model, source: 'local', downloaded: [] };
  }
  const looksLikePath = /^(\.{1,2}[\\/]|[\\/]|~|[A-Za-z]:[\\/])/.test(model) || model.split('/').length > 2;
  if (looksLikePath || !REPO_ID.test(model)) throw new HubError(`no model folder at ${model}, and it is not a hub repo id (org/name)`);
  return downloadModel(model, options);
}
