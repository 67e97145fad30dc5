import { getPlatform } from '../platform/index.js';

/** Settings of transformers' BlipImageProcessor, in our names. */
export interface ImageProcessorConfig {
  readonly doConvertRgb: boolean;
  readonly doResize: boolean;
  readonly size: { readonly height: number; readonly width: number };
  /** PIL resampling filter id; only 3 (bicubic) is supported, as every BLIP-2 checkpoint uses. */
  readonly resample: number;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly [number, number, number];
  readonly imageStd: readonly [number, number, number];
}

/** transformers' BlipImageProcessor defaults (OPENAI_CLIP mean/std, 384x384, bicubic). */
export const BLIP_IMAGE_PROCESSOR_DEFAULTS: ImageProcessorConfig = {
  doConvertRgb: true,
  doResize: true,
  size: { height: 384, width: 384 },
  resample: 3,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
};

export class ProcessorConfigError extends Error {
  override readonly name = 'ProcessorConfigError';
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function bool(j: Json, key: string, fallback: boolean): boolean {
  const v = j[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ProcessorConfigError(`image processor config: ${key} must be a boolean`);
  return v;
}

function num(j: Json, key: string, fallback: number): number {
  const v = j[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ProcessorConfigError(`image processor config: ${key} must be a number`);
  return v;
}

function triple(j: Json, key: string, fallback: readonly [number, number, number]): readonly [number, number, number] {
  const v = j[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number') return [v, v, v];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new ProcessorConfigError(`image processor config: ${key} must be a number or 3 numbers`);
  }
  return [v[0], v[1], v[2]] as [number, number, number];
}

function size(j: Json, fallback: ImageProcessorConfig['size']): ImageProcessorConfig['size'] {
  const v = j.size;
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'number') return { height: v, width: v };
  if (isObject(v) && typeof v.height === 'number' && typeof v.width === 'number') return { height: v.height, width: v.width };
  if (isObject(v) && typeof v.shortest_edge === 'number') {
    throw new ProcessorConfigError('image processor config: size.shortest_edge is not supported by BlipImageProcessor (it resizes to height x width)');
  }
  throw new ProcessorConfigError('image processor config: size must be {height, width} or a number');
}

/**
 * Parses an image processor config: the classic `preprocessor_config.json` (settings at the top level) or
 * the transformers 5 `processor_config.json` layout (settings nested under `image_processor`).
 */
export function parseImageProcessorConfig(json: unknown): ImageProcessorConfig {
  if (!isObject(json)) throw new ProcessorConfigError('image processor config must be a JSON object');
  const j = isObject(json.image_processor) ? json.image_processor : json;
  const d = BLIP_IMAGE_PROCESSOR_DEFAULTS;
  const cfg: ImageProcessorConfig = {
    doConvertRgb: bool(j, 'do_convert_rgb', d.doConvertRgb),
    doResize: bool(j, 'do_resize', d.doResize),
    size: size(j, d.size),
    resample: num(j, 'resample', d.resample),
    doRescale: bool(j, 'do_rescale', d.doRescale),
    rescaleFactor: num(j, 'rescale_factor', d.rescaleFactor),
    doNormalize: bool(j, 'do_normalize', d.doNormalize),
    imageMean: triple(j, 'image_mean', d.imageMean),
    imageStd: triple(j, 'image_std', d.imageStd),
  };
  validateImageProcessorConfig(cfg);
  return cfg;
}

export function validateImageProcessorConfig(cfg: ImageProcessorConfig): void {
  const { height, width } = cfg.size;
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1 || height * width > 1 << 26) {
    throw new ProcessorConfigError(`image processor config: size ${height}x${width} is not a valid image size`);
  }
  if (cfg.doResize && cfg.resample !== 3) {
    throw new ProcessorConfigError(`image processor config: resample ${cfg.resample} is not supported (only 3, bicubic, is implemented bit-exactly)`);
  }
  if (cfg.rescaleFactor <= 0) throw new ProcessorConfigError('image processor config: rescale_factor must be positive');
  if (cfg.imageStd.some((s) => s <= 0)) throw new ProcessorConfigError('image processor config: image_std must be positive');
}

/** Joins a folder (path or URL) and a file name without node:path, so it works in browsers too. */
export function joinLocation(base: string | URL, name: string): string | URL {
  if (base instanceof URL) return new URL(name, base.href.endsWith('/') ? base : new URL(base.href + '/'));
  return base.replace(/[\\/]+$/, '') + '/' + name;
}

function isMissing(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === 'ENOENT' || /ENOENT|HTTP 404|no such file/i.test(err?.message ?? '');
}

/** A JSON file from a model folder (path or URL) through the platform, or null when it does not exist. */
export async function readOptionalJson(base: string | URL, name: string): Promise<unknown | null> {
  const location = joinLocation(base, name);
  const platform = await getPlatform();
  let source;
  try {
    source = await platform.openBytes(location);
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  let text: string;
  try {
    text = new TextDecoder().decode(await source.read(0, source.size));
  } finally {
    await source.close();
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ProcessorConfigError(`${String(location)} is not valid JSON: ${(e as Error).message}`);
  }
}

export async function readRequiredJson(base: string | URL, name: string): Promise<unknown> {
  const json = await readOptionalJson(base, name);
  if (json === null) throw new ProcessorConfigError(`${String(joinLocation(base, name))} not found`);
  return json;
}
