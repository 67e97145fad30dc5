import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/main.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
export const FAKE_ENGINE = fileURLToPath(new URL('../../src/server/fake-engine.ts', import.meta.url));

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI from its sources (tsx), with the fake engine unless `env` says otherwise. */
export function startCli(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, BLIP2_ENGINE_MODULE: FAKE_ENGINE, HF_HUB_OFFLINE: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function collect(child: ChildProcess, stdin?: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  if (stdin !== undefined) child.stdin!.end(stdin);
  else child.stdin!.end();
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

export function cli(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}): Promise<Run> {
  return collect(startCli(args, options.env), options.stdin);
}

/** Runs the CLI in this process (much faster than a child), with captured streams. */
export async function cliInProcess(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await runCli(args, {
    stdin: Readable.from([stdin]),
    stdout,
    stderr,
    env: { BLIP2_ENGINE_MODULE: FAKE_ENGINE, HF_HUB_OFFLINE: '1', ...env },
    cwd: ROOT,
  });
  return { code, stdout: out, stderr: err };
}

/** The base URL a `blip2 serve` child prints once it listens (rejects if it exits first). */
export function listeningUrl(child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(seen);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`serve exited early: ${seen}`)));
  });
}
