/**
 * From `--model` to a running engine: resolve the model folder (local, cache or download, with a progress
 * bar), then create the engine through an engine module. The module is the BLIP-2 engine by default;
 * `BLIP2_ENGINE_MODULE` (a path or URL) replaces it, which is how tests run the CLI with the fake engine.
 */
import { basename, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HubError, resolveModel, type ResolvedModel } from '../io/hub.js';
import { hideDawnStartupWarnings } from '../platform/node.js';
import type { Engine, EngineFactory, ProgressEvent } from '../server/engine.js';
import { CliError, type CliIo } from './io.js';
import type { ModelSettings } from './options.js';
import { ProgressBar } from './progress.js';

/** Where the BLIP-2 engine adapter lives, relative to this file (it wraps the processor and `generate`). */
const DEFAULT_ENGINE_MODULE = '../server/blip2-engine.js';

export interface LoadOptions {
  io: CliIo;
  settings: ModelSettings;
  quiet: boolean;
  verbose: boolean;
}

export interface LoadedEngine {
  engine: Engine;
  model: ResolvedModel;
  timings: { resolveMs: number; loadMs: number };
}

function progressWanted(o: LoadOptions): { on: boolean; interactive: boolean } {
  const tty = o.io.stderr.isTTY === true;
  return { on: !o.quiet && (tty || o.settings.progress), interactive: tty };
}

async function engineFactory(io: CliIo): Promise<EngineFactory> {
  const override = io.env.BLIP2_ENGINE_MODULE;
  const specifier = override
    ? /^[a-z]+:\/\//i.test(override) || override.startsWith('file:')
      ? override
      : pathToFileURL(isAbsolute(override) ? override : resolve(io.cwd, override)).href
    : new URL(DEFAULT_ENGINE_MODULE, import.meta.url).href;
  let mod: { createEngine?: unknown };
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as { createEngine?: unknown };
  } catch (e) {
    if (!override && (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new CliError('the BLIP-2 engine is not included in this build (src/server/blip2-engine.ts is missing)');
    }
    throw new CliError(`cannot load the engine module ${specifier}: ${(e as Error).message}`);
  }
  if (typeof mod.createEngine !== 'function') throw new CliError(`the engine module ${specifier} does not export createEngine()`);
  return mod.createEngine as EngineFactory;
}

/**
 * The model's id as clients and output see it: the repo id of a hub model, the folder's name for a local one
 * (never a path of this machine); a folder inside a Hugging Face cache (`models--org--name/snapshots/<commit>`)
 * is its repo id.
 */
export function servedModelId(model: ResolvedModel): string {
  if (model.source !== 'local') return model.modelId;
  const cached = /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/][^\\/]+[\\/]*$/.exec(model.dir);
  if (cached) return `${cached[1]}/${cached[2]}`;
  return basename(model.dir.replace(/[\\/]+$/, '')) || model.modelId;
}

export async function loadEngine(o: LoadOptions): Promise<LoadedEngine> {
  // Dawn's adapter-enumeration warnings are noise to users (Mesa drivers print them on every run); --verbose keeps them.
  if (!o.verbose) hideDawnStartupWarnings();
  const progress = progressWanted(o);
  const t0 = Date.now();
  let bar: ProgressBar | null = null;
  let model: ResolvedModel;
  try {
    model = await resolveModel(o.settings.model, {
      revision: o.settings.revision,
      env: o.io.env,
      onProgress: progress.on
        ? (p) => {
            bar ??= new ProgressBar(o.io.stderr, `Downloading ${o.settings.model}`, { interactive: progress.interactive, unit: 'bytes' });
            bar.update(p.bytes, p.totalBytes, p.file);
          }
        : undefined,
    });
  } catch (e) {
    throw e instanceof HubError ? new CliError(e.message) : e;
  } finally {
    (bar as ProgressBar | null)?.finish();
  }
  const t1 = Date.now();
  const factory = await engineFactory(o.io);
  let loadBar: ProgressBar | null = null;
  const onProgress = progress.on
    ? (p: ProgressEvent) => {
        loadBar ??= new ProgressBar(o.io.stderr, 'Loading weights', { interactive: progress.interactive, unit: p.unit ?? 'items' });
        loadBar.update(p.done, p.total, p.label);
      }
    : undefined;
  let engine: Engine;
  try {
    engine = await factory({ modelDir: model.dir, modelId: servedModelId(model), dtype: o.settings.dtype, quantize: o.settings.quantize, onProgress });
  } finally {
    (loadBar as ProgressBar | null)?.finish();
  }
  return { engine, model, timings: { resolveMs: t1 - t0, loadMs: Date.now() - t1 } };
}
