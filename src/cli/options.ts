/**
 * Command-line options shared by the commands, parsed with Node's `util.parseArgs` and converted into typed
 * settings with range checks (errors are `UsageError`s, exit code 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkGenerationParams, defaultGenerationParams, type GenerationParams } from '../server/engine.js';
import { DEFAULT_MODEL } from '../io/hub.js';
import { UsageError } from './io.js';

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean', short: 'v' },
  quiet: { type: 'boolean', short: 'q' },
} as const satisfies OptionSpecs;

export const MODEL_OPTIONS = {
  model: { type: 'string', short: 'm' },
  revision: { type: 'string' },
  dtype: { type: 'string' },
  progress: { type: 'boolean' },
} as const satisfies OptionSpecs;

export const GENERATION_OPTIONS = {
  'max-new-tokens': { type: 'string' },
  'num-beams': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  'repetition-penalty': { type: 'string' },
  stop: { type: 'string', multiple: true },
  'num-return-sequences': { type: 'string', short: 'n' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Parses `args` strictly against `options`; unknown flags and missing values are usage errors. */
export function parse(command: string, args: readonly string[], options: OptionSpecs): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    return { values: values as Parsed['values'], positionals };
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message, command);
  }
}

function str(p: Parsed, key: string): string | undefined {
  const v = p.values[key];
  return typeof v === 'string' ? v : undefined;
}

export function flag(p: Parsed, key: string): boolean {
  return p.values[key] === true;
}

/** A number option: integer or not, within [lo, hi]. */
export function numberOption(command: string, p: Parsed, key: string, lo: number, hi: number, integer: boolean): number | undefined {
  const raw = str(p, key);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi) {
    throw new UsageError(`--${key} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}] (got '${raw}')`, command);
  }
  return v;
}

export interface ModelSettings {
  model: string;
  revision?: string;
  dtype: 'f16' | 'f32';
  /** Show progress bars even when stderr is not a terminal. */
  progress: boolean;
}

export function modelSettings(command: string, p: Parsed, env: Readonly<Record<string, string | undefined>>): ModelSettings {
  const dtype = str(p, 'dtype') ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32') throw new UsageError(`--dtype must be f16 or f32 (got '${dtype}')`, command);
  const model = str(p, 'model') ?? env.BLIP2_MODEL ?? DEFAULT_MODEL;
  if (!model.trim()) throw new UsageError('--model must not be empty', command);
  return { model, revision: str(p, 'revision'), dtype, progress: flag(p, 'progress') };
}

export function generationSettings(command: string, p: Parsed): GenerationParams {
  const temperature = numberOption(command, p, 'temperature', 0, 100, false);
  const topP = numberOption(command, p, 'top-p', 0, 1, false);
  const topK = numberOption(command, p, 'top-k', 0, 1_000_000, true);
  const params = defaultGenerationParams({
    maxNewTokens: numberOption(command, p, 'max-new-tokens', 1, 100_000, true) ?? 30,
    numBeams: numberOption(command, p, 'num-beams', 1, 64, true) ?? 1,
    // Greedy unless sampling is asked for; top-p / top-k alone imply temperature 1.
    temperature: temperature ?? (topP !== undefined || topK ? 1 : 0),
    topP: topP ?? 1,
    topK: topK ?? 0,
    seed: numberOption(command, p, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true) ?? 0,
    repetitionPenalty: numberOption(command, p, 'repetition-penalty', 0, 100, false) ?? 1,
    n: numberOption(command, p, 'num-return-sequences', 1, 64, true) ?? 1,
    stop: (p.values.stop as string[] | undefined) ?? [],
  });
  const problem = checkGenerationParams(params);
  if (problem) throw new UsageError(problem.replace(/\b(maxNewTokens|numBeams|topP|topK|repetitionPenalty)\b/g, (k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`), command);
  return params;
}

export interface OutputSettings {
  json: boolean;
  verbose: boolean;
  quiet: boolean;
}

export function outputSettings(p: Parsed): OutputSettings {
  return { json: flag(p, 'json'), verbose: flag(p, 'verbose'), quiet: flag(p, 'quiet') };
}
