/**
 * Command-line options shared by the commands, parsed with Node's `util.parseArgs` and converted into typed
 * settings with range checks (errors are `UsageError`s, exit code 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { checkGenerationParams, defaultGenerationParams, type GenerationParams } from '../server/engine.js';
import { GENERATION_RANGES, inRange, rangeMessage, type RangedParam } from '../server/generation-ranges.js';
import { DEFAULT_MODEL } from '../io/hub.js';
import { isQuantScheme, type QuantScheme } from '../quant/format.js';
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
  quantize: { type: 'string' },
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

/**
 * `--temperature -1` would be read by `parseArgs` as a missing value followed by an option `-1`; a value that
 * looks like a negative number after an option that takes a value is joined to it (`--temperature=-1`), so that
 * it parses and meets the range check. Anything else after such an option keeps parseArgs' own handling.
 */
function joinNegativeNumbers(args: readonly string[], options: OptionSpecs): string[] {
  const takesValue = (arg: string): string | null => {
    const long = /^--([^=]+)$/.exec(arg);
    if (long) return options[long[1]!]?.type === 'string' ? long[1]! : null;
    const short = /^-([A-Za-z])$/.exec(arg);
    if (!short) return null;
    const name = Object.keys(options).find((k) => options[k]!.short === short[1]);
    return name && options[name]!.type === 'string' ? name : null;
  };
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const name = takesValue(arg);
    const next = args[i + 1];
    if (name && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Parses `args` strictly against `options`; unknown flags and missing values are usage errors. */
export function parse(command: string, args: readonly string[], options: OptionSpecs): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeNumbers(args, options), options, allowPositionals: true, strict: true });
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

/** A number option: integer or not, within [lo, hi] (or (lo, hi] with `loOpen`). */
export function numberOption(command: string, p: Parsed, key: string, lo: number, hi: number, integer: boolean, loOpen = false): number | undefined {
  const raw = str(p, key);
  if (raw === undefined) return undefined;
  const range = { lo, hi, integer, loOpen };
  const v = Number(raw);
  if (raw.trim() === '' || !inRange(range, v)) throw new UsageError(rangeMessage(`--${key}`, range, `'${raw}'`), command);
  return v;
}

/** A generation flag, checked against the range the server applies to the same field. */
function generationOption(command: string, p: Parsed, param: RangedParam): number | undefined {
  const r = GENERATION_RANGES[param];
  return numberOption(command, p, r.cli.slice(2), r.lo, r.hi, r.integer, r.loOpen);
}

export interface ModelSettings {
  model: string;
  revision?: string;
  dtype: 'f16' | 'f32';
  /** Quantize the Linear weights of the vision encoder and OPT decoder (a converted folder sets its own). */
  quantize?: QuantScheme;
  /** Show progress bars even when stderr is not a terminal. */
  progress: boolean;
}

export function modelSettings(command: string, p: Parsed, env: Readonly<Record<string, string | undefined>>): ModelSettings {
  const dtype = str(p, 'dtype') ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32') throw new UsageError(`--dtype must be f16 or f32 (got '${dtype}')`, command);
  const model = str(p, 'model') ?? env.BLIP2_MODEL ?? DEFAULT_MODEL;
  if (!model.trim()) throw new UsageError('--model must not be empty', command);
  return { model, revision: str(p, 'revision'), dtype, quantize: quantizeOption(command, p), progress: flag(p, 'progress') };
}

/** --quantize q8|q4 (absent: none). */
export function quantizeOption(command: string, p: Parsed): QuantScheme | undefined {
  const q = str(p, 'quantize');
  if (q === undefined) return undefined;
  if (!isQuantScheme(q)) throw new UsageError(`--quantize must be q8 or q4 (got '${q}')`, command);
  return q;
}

export function generationSettings(command: string, p: Parsed): GenerationParams {
  const temperature = generationOption(command, p, 'temperature');
  const topP = generationOption(command, p, 'topP');
  const topK = generationOption(command, p, 'topK');
  const params = defaultGenerationParams({
    maxNewTokens: generationOption(command, p, 'maxNewTokens') ?? 30,
    numBeams: generationOption(command, p, 'numBeams') ?? 1,
    // Greedy unless sampling is asked for; top-p / top-k alone imply temperature 1.
    temperature: temperature ?? (topP !== undefined || topK ? 1 : 0),
    topP: topP ?? 1,
    topK: topK ?? 0,
    seed: generationOption(command, p, 'seed') ?? 0,
    repetitionPenalty: generationOption(command, p, 'repetitionPenalty') ?? 1,
    n: generationOption(command, p, 'n') ?? 1,
    stop: (p.values.stop as string[] | undefined) ?? [],
  });
  const problem = checkGenerationParams(params);
  if (problem) {
    const flags = Object.fromEntries(Object.entries(GENERATION_RANGES).map(([k, r]) => [k, r.cli]));
    throw new UsageError(problem.replace(/\b(maxNewTokens|numBeams|topP|topK|repetitionPenalty)\b/g, (k) => flags[k] ?? k), command);
  }
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
