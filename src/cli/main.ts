/**
 * The `blip2` command: dispatches to the subcommands and turns errors into messages and exit codes
 * (2 usage, 1 failure; stack traces only with --verbose).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchCommand } from './commands/bench.js';
import { chatCommand } from './commands/chat.js';
import { convertCommand } from './commands/convert.js';
import { downloadCommand } from './commands/download.js';
import { finetuneCommand } from './commands/finetune.js';
import { askCommand, captionCommand } from './commands/generate.js';
import { serveCommand } from './commands/serve.js';
import { MAIN_HELP } from './help.js';
import { exitWithParentWanted, watchParent } from './parent-watch.js';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, processIo, writeLine, type CliIo } from './io.js';

type Command = (io: CliIo, args: readonly string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  caption: captionCommand,
  ask: askCommand,
  chat: chatCommand,
  serve: serveCommand,
  download: downloadCommand,
  convert: convertCommand,
  finetune: finetuneCommand,
  bench: benchCommand,
};

function version(): string {
  // package.json sits two folders up from src/cli (three from dist/src/cli).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'blip2-webgpu') return pkg.version ?? 'unknown';
    } catch {
      // not here: look one folder up
    }
  }
  return 'unknown';
}

/** Runs `blip2 ARGS...` and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const [first, ...rest] = argv;
  try {
    if (first === undefined) {
      io.stderr.write(MAIN_HELP);
      return EXIT_USAGE;
    }
    if (first === '--help' || first === '-h' || first === 'help') {
      io.stdout.write(MAIN_HELP);
      return EXIT_OK;
    }
    if (first === '--version' || first === '-V') {
      writeLine(io.stdout, version());
      return EXIT_OK;
    }
    const command = COMMANDS[first];
    if (!command) {
      throw new UsageError(first.startsWith('-') ? `unknown option '${first}' (a command comes first)` : `unknown command '${first}'`);
    }
    return await command(io, rest);
  } catch (e) {
    if (e instanceof UsageError) {
      writeLine(io.stderr, `blip2${e.command ? ` ${e.command}` : ''}: ${e.message}`);
      writeLine(io.stderr, `Try 'blip2${e.command ? ` ${e.command}` : ''} --help'.`);
      return EXIT_USAGE;
    }
    const message = e instanceof Error ? e.message : String(e);
    writeLine(io.stderr, `blip2: ${e instanceof CliError ? message : `error: ${message}`}`);
    if (verbose && e instanceof Error && e.stack) writeLine(io.stderr, e.stack);
    return EXIT_FAILURE;
  }
}

/** Entry point of the `blip2` binary. */
export async function main(): Promise<void> {
  // A reader that went away (a closed pipe, a parent that exited) must not crash the CLI with EPIPE.
  process.stderr.on('error', () => {});
  if (exitWithParentWanted(process.env)) {
    watchParent((pid) => {
      writeLine(process.stderr, `blip2: the parent process ${pid} exited; stopping as on SIGTERM`);
      process.kill(process.pid, 'SIGTERM');
    });
  }
  process.exitCode = await runCli(process.argv.slice(2));
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
