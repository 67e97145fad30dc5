/** `blip2 download [MODEL]`: fills the Hugging Face cache with what BLIP-2 needs and prints the folder. */
import { DEFAULT_MODEL, HubError, downloadModel, type ResolvedModel } from '../../io/hub.js';
import { DOWNLOAD_HELP } from '../help.js';
import { CliError, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import { COMMON_OPTIONS, flag, outputSettings, parse } from '../options.js';
import { ProgressBar } from '../progress.js';

export async function downloadCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('download', args, {
    ...COMMON_OPTIONS,
    model: { type: 'string', short: 'm' },
    revision: { type: 'string' },
    refresh: { type: 'boolean' },
    json: { type: 'boolean' },
    progress: { type: 'boolean' },
  });
  if (p.values.help) {
    io.stdout.write(DOWNLOAD_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length > 1) throw new UsageError('takes at most one MODEL', 'download');
  const flagModel = typeof p.values.model === 'string' ? p.values.model : undefined;
  if (flagModel && p.positionals[0] && flagModel !== p.positionals[0]) throw new UsageError('give the model once (argument or --model)', 'download');
  const model = p.positionals[0] ?? flagModel ?? io.env.BLIP2_MODEL ?? DEFAULT_MODEL;
  const out = outputSettings(p);
  const tty = io.stderr.isTTY === true;
  const showProgress = !out.quiet && (tty || flag(p, 'progress'));
  let bar: ProgressBar | null = null;
  let result: ResolvedModel;
  try {
    result = await downloadModel(model, {
      revision: typeof p.values.revision === 'string' ? p.values.revision : undefined,
      refresh: flag(p, 'refresh'),
      env: io.env,
      onProgress: showProgress
        ? (e) => {
            bar ??= new ProgressBar(io.stderr, `Downloading ${model}`, { interactive: tty, unit: 'bytes' });
            bar.update(e.bytes, e.totalBytes, e.file);
          }
        : undefined,
    });
  } catch (e) {
    throw e instanceof HubError ? new CliError(e.message) : e;
  } finally {
    (bar as ProgressBar | null)?.finish();
  }
  if (out.json) {
    writeLine(io.stdout, JSON.stringify({ model, dir: result.dir, commit: result.commit ?? null, downloaded: result.downloaded }));
  } else {
    if (!out.quiet) {
      const what = result.downloaded.length ? `downloaded ${result.downloaded.length} file(s)` : 'already in the cache';
      writeLine(io.stderr, `${model}@${result.commit?.slice(0, 12) ?? '?'}: ${what}`);
    }
    writeLine(io.stdout, result.dir);
  }
  return EXIT_OK;
}
