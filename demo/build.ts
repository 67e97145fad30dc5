// Builds the browser demo into one static folder: index.html, style.css, main.js (the engine bundled by
// esbuild), bench.html + bench.js (the benchmark page, bench/ bundled) and wgsl/ (the shaders, found next to
// the scripts through setShaderBaseUrl). Host it anywhere.
//   npx tsx demo/build.ts [--out DIR] [--minify]
import { copyFileSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { projectInfo } from '../bench/environment-node.js';

export const DEMO_DIR = fileURLToPath(new URL('.', import.meta.url));
export const REPO_ROOT = join(DEMO_DIR, '..');
export const DEFAULT_OUT = join(DEMO_DIR, 'dist');

export interface BuildDemoOptions {
  outDir?: string;
  minify?: boolean;
}

export async function buildDemo(options: BuildDemoOptions = {}): Promise<string> {
  const outDir = options.outDir ?? DEFAULT_OUT;
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { main: join(DEMO_DIR, 'main.ts'), bench: join(DEMO_DIR, 'bench.ts') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outdir: outDir,
    sourcemap: true,
    minify: options.minify ?? false,
    logLevel: 'error',
    // Benchmark reports name the code that ran: the git state at build time.
    define: { __BLIP2_BUILD__: JSON.stringify(projectInfo()) },
  });
  for (const file of ['index.html', 'bench.html', 'style.css']) copyFileSync(join(DEMO_DIR, file), join(outDir, file));
  cpSync(join(REPO_ROOT, 'wgsl'), join(outDir, 'wgsl'), { recursive: true });
  return outDir;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const outAt = args.indexOf('--out');
  const outDir = outAt >= 0 ? args[outAt + 1] : undefined;
  if (outAt >= 0 && !outDir) throw new Error('--out needs a folder');
  const out = await buildDemo({ outDir, minify: args.includes('--minify') });
  console.log(`demo built in ${out}`);
}
