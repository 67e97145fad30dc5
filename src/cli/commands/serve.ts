/** `blip2 serve`: the OpenAI-compatible server, until SIGINT/SIGTERM shut it down gracefully. */
import { Blip2Server } from '../../server/http-server.js';
import { DEFAULT_LIMITS, type ServerSettingsInput } from '../../server/server-options.js';
import { loadEngine } from '../engine-loader.js';
import { SERVE_HELP } from '../help.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import { COMMON_OPTIONS, MODEL_OPTIONS, flag, modelSettings, numberOption, outputSettings, parse, type Parsed } from '../options.js';

/** Exit status after the GPU device was lost (EX_TEMPFAIL: a restart may succeed). */
export const EXIT_DEVICE_LOST = 75;

const SERVE_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  'api-key': { type: 'string' },
  'max-batch': { type: 'string' },
  batching: { type: 'string' },
  'max-queue': { type: 'string' },
  'max-image-bytes': { type: 'string' },
  'max-image-pixels': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  'max-prompt-tokens': { type: 'string' },
  'max-tokens-limit': { type: 'string' },
  'default-max-tokens': { type: 'string' },
  'request-timeout': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'allow-private-image-urls': { type: 'boolean' },
  'served-model-name': { type: 'string', multiple: true },
} as const;

/**
 * vLLM's `--served-model-name NAME [NAME ...]` takes several names after one flag; the names that follow it are
 * joined to it here (`serve` has no positional arguments to confuse them with). Repeating the flag works too.
 */
function joinServedNames(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    out.push(args[i]!);
    if (args[i] !== '--served-model-name') continue;
    out.pop();
    let j = i + 1;
    for (; j < args.length && !args[j]!.startsWith('-'); j++) out.push(`--served-model-name=${args[j]}`);
    if (j === i + 1) out.push(args[i]!); // no name: parseArgs reports the missing value
    i = j - 1;
  }
  return out;
}

function settingsFrom(io: CliIo, p: Parsed): ServerSettingsInput {
  const n = (key: string, lo: number, hi: number) => numberOption('serve', p, key, lo, hi, true);
  const seconds = (key: string) => {
    const v = numberOption('serve', p, key, 0.001, 86_400, false);
    return v === undefined ? undefined : Math.round(v * 1000);
  };
  const servedModelNames = (p.values['served-model-name'] as string[] | undefined) ?? [];
  if (servedModelNames.some((n) => n.trim() === '')) throw new UsageError('--served-model-name must not be empty', 'serve');
  const host = typeof p.values.host === 'string' ? p.values.host : '127.0.0.1';
  if (!host.trim()) throw new UsageError('--host must not be empty', 'serve');
  const apiKey = typeof p.values['api-key'] === 'string' ? p.values['api-key'] : io.env.BLIP2_API_KEY || undefined;
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--api-key must not be empty', 'serve');
  const limits = {
    maxImageBytes: n('max-image-bytes', 1, 2 ** 31) ?? DEFAULT_LIMITS.maxImageBytes,
    maxImagePixels: n('max-image-pixels', 1, 2 ** 40) ?? DEFAULT_LIMITS.maxImagePixels,
    maxBodyBytes: n('max-body-bytes', 1, 2 ** 31) ?? DEFAULT_LIMITS.maxBodyBytes,
    maxPromptTokens: n('max-prompt-tokens', 1, 1_000_000) ?? DEFAULT_LIMITS.maxPromptTokens,
    maxTokens: n('max-tokens-limit', 1, 1_000_000) ?? DEFAULT_LIMITS.maxTokens,
    defaultMaxTokens: n('default-max-tokens', 1, 1_000_000) ?? DEFAULT_LIMITS.defaultMaxTokens,
    requestTimeoutMs: seconds('request-timeout') ?? DEFAULT_LIMITS.requestTimeoutMs,
  };
  if (limits.defaultMaxTokens > limits.maxTokens) throw new UsageError('--default-max-tokens cannot exceed --max-tokens-limit', 'serve');
  const batching = p.values.batching ?? 'continuous';
  if (batching !== 'continuous' && batching !== 'static') throw new UsageError(`--batching must be continuous or static (got '${String(batching)}')`, 'serve');
  return {
    host,
    port: n('port', 0, 65_535) ?? 8000,
    batching,
    apiKey,
    maxBatch: n('max-batch', 1, 1024) ?? 8,
    maxQueue: n('max-queue', 0, 1_000_000) ?? 64,
    allowPrivateImageUrls: flag(p, 'allow-private-image-urls'),
    shutdownGraceMs: seconds('shutdown-timeout') ?? 30_000,
    servedModelNames,
    limits,
  };
}

export async function serveCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('serve', joinServedNames(args), { ...COMMON_OPTIONS, ...MODEL_OPTIONS, ...SERVE_OPTIONS });
  if (p.values.help) {
    io.stdout.write(SERVE_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length > 0) throw new UsageError(`takes no arguments (got '${p.positionals[0]}')`, 'serve');
  const out = outputSettings(p);
  const settings = settingsFrom(io, p);
  const model = modelSettings('serve', p, io.env);
  const { engine } = await loadEngine({ io, settings: model, quiet: out.quiet, verbose: out.verbose });
  let server: Blip2Server;
  try {
    server = await Blip2Server.start(engine, {
      ...settings,
      log: (line) => {
        // Request lines go away with --quiet; errors never do, but their stack only shows with --verbose.
        if (line.startsWith('error:')) writeLine(io.stderr, out.verbose ? line : line.split('\n')[0]!);
        else if (!out.quiet) writeLine(io.stderr, line);
      },
    });
  } catch (e) {
    await engine.dispose();
    const code = (e as { code?: string }).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      writeLine(io.stderr, `blip2 serve: cannot listen on ${settings.host}:${settings.port} (${code})`);
      return EXIT_FAILURE;
    }
    throw e;
  }
  if (settings.allowPrivateImageUrls && !out.quiet) {
    writeLine(io.stderr, 'warning: --allow-private-image-urls lets clients make this server fetch from its own network');
  }
  writeLine(io.stderr, `blip2 serve: ${server.servedNames.join(', ')} listening on ${server.url} (${server.batching} batching)`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        writeLine(io.stderr, `blip2 serve: ${signal} again, exiting now`);
        process.exit(EXIT_FAILURE);
      }
      stopping = true;
      if (!out.quiet) writeLine(io.stderr, `blip2 serve: ${signal}, finishing in-flight requests...`);
      void server
        .close()
        .then(() => engine.dispose())
        .then(() => {
          if (!out.quiet) writeLine(io.stderr, 'blip2 serve: stopped');
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(EXIT_OK);
        });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // A lost GPU device does not come back in this process: what is left gets 503, and the process exits
    // non-zero so that a supervisor (systemd, Kubernetes, docker --restart) starts a fresh one.
    void server.lost.then((e) => {
      if (stopping) return;
      stopping = true;
      writeLine(io.stderr, `blip2 serve: ${e.message}; exiting with status ${EXIT_DEVICE_LOST} so that a supervisor restarts it`);
      void server
        .close()
        .then(() => engine.dispose())
        .catch(() => {})
        .finally(() => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(EXIT_DEVICE_LOST);
        });
    });
  });
}
