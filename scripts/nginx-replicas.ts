/**
 * Two `blip2 serve` replicas behind nginx (deploy/nginx/blip2.conf), all on loopback: a bounded load goes
 * through nginx, one replica is stopped in the middle of it, and every request must still be answered.
 *
 *   npm run deploy:check -- --model DIR [--requests 36] [--clients 6] [--stop term|kill] [--max-tokens 8]
 *                           [--dtype f32] [--images DIR] [--keep]
 *
 * `--stop term` (default) is a rolling restart: the replica stops accepting, finishes what it runs, exits;
 * nginx passes new requests to the other one. `--stop kill` is a crash (SIGKILL): requests the replica was
 * running are sent again to the other one (the load is then non-streamed only: a stream that has started
 * cannot move). Exits 0 when every request got its answer, 1 otherwise; prints which replica served what.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const CONFIG_TEMPLATE = join(ROOT, 'deploy/nginx/blip2.conf');

export interface ReplicaCheckOptions {
  model: string;
  requests?: number;
  clients?: number;
  stop?: 'term' | 'kill';
  maxTokens?: number;
  dtype?: 'f32' | 'f16';
  images?: string;
  /** Keep the nginx prefix (config, logs) for a look afterwards. */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface ReplicaCheckResult {
  requests: number;
  answered: number;
  failures: string[];
  /** Requests nginx passed on to the second replica after the first failed or refused them. */
  retried: number;
  /** Requests answered per replica address. */
  servedBy: Record<string, number>;
  /** Answered requests when the replica was stopped. */
  stoppedAfter: number;
  stopped: { address: string; signal: 'SIGTERM' | 'SIGKILL'; exitCode: number | null };
  wallSeconds: number;
  prefix: string;
}

/** nginx from PATH or Debian's /usr/sbin. */
export function findNginx(): string | null {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) if (existsSync(p)) return p;
  const r = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface Replica {
  child: ChildProcess;
  address: string;
  exited: Promise<number | null>;
}

async function startReplica(o: ReplicaCheckOptions): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--model', o.model, '--dtype', o.dtype ?? 'f32', '--port', '0', '--quiet'], {
    cwd: ROOT,
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let log = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`a replica exited with ${code} before listening:\n${log}`)));
  });
  return { child, address, exited };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function imageUrls(dir: string): string[] {
  const files = readdirSync(dir).filter((f) => ['.png', '.jpg', '.jpeg'].includes(extname(f).toLowerCase())).sort();
  if (files.length === 0) throw new Error(`no images in ${dir} (give --images DIR)`);
  return files.map((f) => `data:image/${extname(f).slice(1).replace('jpg', 'jpeg')};base64,${readFileSync(join(dir, f)).toString('base64')}`);
}

/** Sends one request; returns null when it got a complete answer, else what went wrong. */
async function ask(base: string, body: Record<string, unknown>): Promise<string | null> {
  try {
    const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 200) return `HTTP ${res.status}: ${text.slice(0, 200)}`;
    if (!body.stream) {
      const choice = (JSON.parse(text) as { choices?: { finish_reason?: string }[] }).choices?.[0];
      return choice?.finish_reason ? null : `no answer in ${text.slice(0, 200)}`;
    }
    if (/^data: \{"error"/m.test(text)) return `stream error: ${text.slice(text.indexOf('data: {"error"'), 300)}`;
    return /"finish_reason":"(stop|length)"/.test(text) && text.trimEnd().endsWith('data: [DONE]') ? null : `stream cut short: ${text.slice(-200)}`;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function replicaCheck(o: ReplicaCheckOptions): Promise<ReplicaCheckResult> {
  const log = o.log ?? (() => {});
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx is not installed (Debian: apt-get install nginx; scripts/install-system.sh installs it)');
  const requests = o.requests ?? 36;
  const clients = o.clients ?? 6;
  const stop = o.stop ?? 'term';
  const urls = imageUrls(o.images ?? o.model);
  const prefix = mkdtempSync(join(tmpdir(), 'blip2-nginx-'));
  // Started as root, nginx runs its workers as `nobody`: they must reach the prefix and write the body buffers.
  chmodSync(prefix, 0o755);
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, d), { mode: 0o777 });
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) chmodSync(join(prefix, d), 0o777);
  const replicas: Replica[] = [];
  let proxy: ChildProcess | null = null;
  try {
    log('starting two replicas...');
    replicas.push(...(await Promise.all([startReplica(o), startReplica(o)])));
    const listen = `127.0.0.1:${await freePort()}`;
    const config = readFileSync(CONFIG_TEMPLATE, 'utf8')
      .replaceAll('@PREFIX@', prefix)
      .replaceAll('@REPLICA_A@', replicas[0]!.address)
      .replaceAll('@REPLICA_B@', replicas[1]!.address)
      .replaceAll('@LISTEN@', listen);
    writeFileSync(join(prefix, 'nginx.conf'), config);
    log(`replicas on ${replicas.map((r) => r.address).join(' and ')}; nginx on ${listen}`);
    proxy = spawn(nginx, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let nginxErr = '';
    proxy.stderr!.on('data', (d: Buffer) => (nginxErr += d.toString()));
    const base = `http://${listen}`;
    await waitFor(`nginx on ${listen}${nginxErr ? `: ${nginxErr}` : ''}`, async () => (await fetch(`${base}/health`)).status === 200);
    const model = ((await (await fetch(`${base}/health`)).json()) as { model: string }).model;

    const bodies = Array.from({ length: requests }, (_, i) => ({
      model,
      max_tokens: o.maxTokens ?? 8,
      // A crash cuts a stream that has started; a rolling restart must not.
      stream: stop === 'term' && i % 3 === 0,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: urls[i % urls.length] } }, ...(i % 2 ? [{ type: 'text', text: `What is in picture ${i}?` }] : [])] }],
    }));
    const failures: string[] = [];
    let answered = 0;
    let next = 0;
    const stopAt = Math.floor(requests / 3);
    let stoppedAfter = -1;
    const victim = replicas[0]!;
    const signal = stop === 'term' ? 'SIGTERM' : 'SIGKILL';
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const problem = await ask(base, body);
          if (problem) failures.push(problem);
          else answered++;
          if (stoppedAfter < 0 && answered + failures.length >= stopAt) {
            stoppedAfter = answered;
            log(`stopping replica ${victim.address} (${signal}) after ${answered} answers`);
            victim.child.kill(signal);
          }
        }
      }),
    );
    const wallSeconds = (performance.now() - t0) / 1000;
    const exitCode = await victim.exited;
    const lines = readFileSync(join(prefix, 'access.log'), 'utf8').trim().split('\n').filter(Boolean);
    const servedBy: Record<string, number> = {};
    let retried = 0;
    for (const line of lines) {
      // "POST 200 0.123 "A, B" "503, 200"": the replicas tried, the last one answered.
      const m = /^POST 200 \S+ "([^"]*)"/.exec(line);
      if (!m) continue;
      const tried = m[1]!.split(', ');
      if (tried.length > 1) retried++;
      servedBy[tried.at(-1)!] = (servedBy[tried.at(-1)!] ?? 0) + 1;
    }
    return { requests, answered, failures, retried, servedBy, stoppedAfter, stopped: { address: victim.address, signal, exitCode }, wallSeconds, prefix };
  } finally {
    proxy?.kill('SIGQUIT');
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    if (proxy && proxy.exitCode === null) await new Promise((r) => proxy!.once('exit', r));
    if (!o.keep) rmSync(prefix, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      requests: { type: 'string' },
      clients: { type: 'string' },
      stop: { type: 'string' },
      'max-tokens': { type: 'string' },
      dtype: { type: 'string' },
      images: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  if (!values.model) {
    console.error('usage: npm run deploy:check -- --model DIR [--requests 36] [--clients 6] [--stop term|kill] [--max-tokens 8] [--keep]');
    process.exit(2);
  }
  const stop = values.stop ?? 'term';
  if (stop !== 'term' && stop !== 'kill') throw new Error('--stop must be term or kill');
  const r = await replicaCheck({
    model: values.model,
    requests: values.requests ? Number(values.requests) : undefined,
    clients: values.clients ? Number(values.clients) : undefined,
    stop,
    maxTokens: values['max-tokens'] ? Number(values['max-tokens']) : undefined,
    dtype: values.dtype === 'f16' ? 'f16' : 'f32',
    images: values.images,
    keep: values.keep,
    log: (line) => console.error(line),
  });
  console.log(`${r.answered}/${r.requests} answered in ${r.wallSeconds.toFixed(1)} s; replica ${r.stopped.address} stopped (${r.stopped.signal}) after ${r.stoppedAfter} answers, exit ${r.stopped.exitCode}`);
  console.log(`served by: ${Object.entries(r.servedBy).map(([a, n]) => `${a} ${n}`).join(', ')}; passed on to the other replica: ${r.retried}`);
  for (const f of new Set(r.failures)) console.log(`FAILED (${r.failures.filter((x) => x === f).length}x): ${f}`);
  if (values.keep) console.log(`nginx prefix (config, logs): ${r.prefix}`);
  process.exitCode = r.answered === r.requests ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
