/** `blip2 convert SOURCE --quantize q4 --out DIR`: a compact quantized copy of a BLIP-2 folder. */
import { resolve } from 'node:path';
import { HubError, resolveModel } from '../../io/hub.js';
import { convertCheckpoint } from '../../quant/convert.js';
import { CONVERT_HELP } from '../help.js';
import { CliError, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import { COMMON_OPTIONS, flag, numberOption, outputSettings, parse, quantizeOption } from '../options.js';
import { ProgressBar, formatBytes } from '../progress.js';

export async function convertCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('convert', args, {
    ...COMMON_OPTIONS,
    quantize: { type: 'string' },
    out: { type: 'string', short: 'o' },
    dtype: { type: 'string' },
    'max-shard-size': { type: 'string' },
    revision: { type: 'string' },
    progress: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (p.values.help) {
    io.stdout.write(CONVERT_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length !== 1) throw new UsageError('takes one SOURCE (a model folder or hub repo id)', 'convert');
  const quantize = quantizeOption('convert', p);
  if (!quantize) throw new UsageError('--quantize q8|q4 is required', 'convert');
  const outArg = typeof p.values.out === 'string' ? p.values.out : undefined;
  if (!outArg?.trim()) throw new UsageError('--out DIR is required', 'convert');
  const dtype = typeof p.values.dtype === 'string' ? p.values.dtype : 'f16';
  if (dtype !== 'f16' && dtype !== 'f32') throw new UsageError(`--dtype must be f16 or f32 (got '${dtype}')`, 'convert');
  const maxShardBytes = numberOption('convert', p, 'max-shard-size', 1e6, 1e12, true);
  const out = outputSettings(p);
  const tty = io.stderr.isTTY === true;
  const showProgress = !out.quiet && (tty || flag(p, 'progress'));
  const source = p.positionals[0]!;
  let model;
  try {
    model = await resolveModel(source, { revision: typeof p.values.revision === 'string' ? p.values.revision : undefined, env: io.env });
  } catch (e) {
    throw e instanceof HubError ? new CliError(e.message) : e;
  }
  const outDir = resolve(io.cwd, outArg);
  let bar: ProgressBar | null = null;
  const t0 = Date.now();
  let result;
  try {
    result = await convertCheckpoint(model.dir, outDir, {
      quantize,
      dtype,
      maxShardBytes,
      onProgress: showProgress
        ? (e) => {
            bar ??= new ProgressBar(io.stderr, `Converting to ${quantize}`, { interactive: tty, unit: 'bytes' });
            bar.update(e.doneBytes, e.totalBytes, e.key);
          }
        : undefined,
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  } finally {
    (bar as ProgressBar | null)?.finish();
  }
  if (out.json) {
    writeLine(io.stdout, JSON.stringify({ dir: outDir, quantize, dtype, shards: result.shards, bytes: result.bytes, copied: result.copied }));
  } else {
    if (!out.quiet) writeLine(io.stderr, `${source} -> ${quantize}: ${formatBytes(result.bytes)} in ${result.shards.length} shard(s), ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    writeLine(io.stdout, outDir);
  }
  return EXIT_OK;
}
