/** `blip2 bench`: runs the model benchmark script of a source checkout, passing the arguments through. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_HELP } from '../help.js';
import { CliError, EXIT_FAILURE, EXIT_OK, type CliIo } from '../io.js';

/** The checkout's root: the nearest folder above this file with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new CliError('cannot find the package folder');
    dir = up;
  }
  return dir;
}

export async function benchCommand(io: CliIo, args: readonly string[]): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h') {
    io.stdout.write(BENCH_HELP);
    return EXIT_OK;
  }
  // `blip2 bench -- --help` reaches the script's own options.
  const forwarded = args[0] === '--' ? args.slice(1) : args;
  const root = packageRoot();
  const script = join(root, 'bench', 'model.ts');
  if (!existsSync(script)) throw new CliError(`${script} not found: benchmarks run from a source checkout of blip2-webgpu`);
  // The benchmark is TypeScript: run it through tsx (a dev dependency of the checkout).
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...forwarded], { cwd: root, stdio: 'inherit', env: { ...process.env, ...io.env } });
  return new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new CliError(`cannot start the benchmark: ${e.message}`)));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + constants.signals[signal] : EXIT_FAILURE)));
  });
}
