// Serves the built demo on 127.0.0.1, with model folders next to the page at ./models/NAME/ (HTTP ranges, so
// multi-GB shards are read in pieces) and the sample photo at ./samples/. The tiny test checkpoint is always
// mounted; --model adds a local HF folder (listed first, so the page picks it by default).
//   npx tsx demo/serve.ts [--port 8080] [--model /path/to/blip2-opt-2.7b]... [--no-build]
import { existsSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveStatic, type StaticServer, type StaticServerOptions } from '../test/support/static-server.js';
import { buildDemo, DEFAULT_OUT, REPO_ROOT } from './build.js';

export const TINY_MODEL = join(REPO_ROOT, 'test/fixtures/tiny-blip2');

export interface ServeDemoOptions {
  /** 0 picks a free port. */
  port?: number;
  /** Extra model folders, each served at /models/NAME/. */
  models?: string[];
  /** The built demo (default demo/dist). */
  distDir?: string;
  /** Called for every request (tests count the model requests a visit makes). */
  onRequest?: StaticServerOptions['onRequest'];
}

export interface DemoServer extends StaticServer {
  /** Model URLs relative to the page, default first. */
  models: string[];
}

/** A readable mount name; HF cache snapshots (models--org--name/snapshots/SHA) are named after the repo. */
export function modelName(folder: string): string {
  const snapshotOf = /models--[^/]+--([^/]+)\/snapshots\/[^/]+\/?$/.exec(folder);
  return snapshotOf ? snapshotOf[1]! : basename(folder);
}

export async function serveDemo(options: ServeDemoOptions = {}): Promise<DemoServer> {
  const distDir = options.distDir ?? DEFAULT_OUT;
  if (!existsSync(join(distDir, 'main.js'))) throw new Error(`${distDir} has no main.js: build the demo first (npm run demo:build)`);
  const routes: Record<string, string> = {};
  const models: string[] = [];
  for (const folder of [...(options.models ?? []).map((m) => resolve(m)), TINY_MODEL]) {
    if (!existsSync(join(folder, 'config.json'))) throw new Error(`${folder} is not a model folder (no config.json)`);
    let name = modelName(folder);
    for (let i = 2; routes[`/models/${name}/`] !== undefined; i++) name = `${modelName(folder)}-${i}`;
    routes[`/models/${name}/`] = folder;
    models.push(`./models/${name}/`);
  }
  routes['/samples/'] = TINY_MODEL;
  routes['/'] = distDir;
  writeFileSync(join(distDir, 'models.json'), JSON.stringify(models));
  const server = await serveStatic(routes, { port: options.port ?? 8080, onRequest: options.onRequest });
  return { ...server, models };
}

function parseArgs(args: string[]): ServeDemoOptions & { build: boolean } {
  const out: ServeDemoOptions & { build: boolean; models: string[] } = { models: [], build: true };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') {
      out.port = Number(value());
      if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error(`--port must be 0..65535`);
    } else if (a === '--model') out.models.push(value());
    else if (a === '--no-build') out.build = false;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npx tsx demo/serve.ts [--port 8080] [--model /path/to/hf-folder]... [--no-build]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { build, ...options } = parseArgs(process.argv.slice(2));
    if (build) await buildDemo();
    const server = await serveDemo(options);
    console.log(`BLIP-2 demo: ${server.url}/`);
    for (const m of server.models) console.log(`  model ${m}  (${server.url}${m.slice(1)})`);
    console.log(`serving ${options.distDir ?? DEFAULT_OUT}; Ctrl-C stops`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    console.error(`demo: ${err.message}${err.code === 'EADDRINUSE' ? ' (pick another with --port N)' : ''}`);
    process.exit(1);
  }
}
