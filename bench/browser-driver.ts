/**
 * `--browser` for bench:kernels and bench:model: builds the demo (which includes the benchmark page), serves it
 * on 127.0.0.1 with the model folder and the sample image, and runs the page's benchmark in headless Chromium
 * (SwiftShader: test/support/browser.ts has the launch recipe). The page's progress lines are relayed here; the
 * host facts a page cannot read (CPU model and clock, OS) are filled in by this driver, on the same machine.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { buildDemo } from '../demo/build.js';
import { launchChromium } from '../test/support/browser.js';
import { serveStatic } from '../test/support/static-server.js';
import type { PageRunOptions } from './browser-run.js';
import { hostInfo } from './environment-node.js';
import { validateReport, type BenchReport } from './report-schema.js';

export interface BrowserBenchRequest extends Omit<PageRunOptions, 'model' | 'image'> {
  /** Local model folder, served to the page. */
  modelDir?: string;
  /** Local image file, served to the page. */
  imagePath?: string;
}

export async function runBenchInBrowser(request: BrowserBenchRequest, log: (line: string) => void = (l) => console.error(l)): Promise<BenchReport> {
  const { modelDir, imagePath, ...options } = request;
  const out = mkdtempSync(join(tmpdir(), 'blip2-bench-page-'));
  const routes: Record<string, string> = {};
  const hostAtStart = hostInfo();
  const page: PageRunOptions = { ...options, cpuGhz: options.cpuGhz ?? hostAtStart.cpu_ghz };
  if (modelDir) {
    routes['/model/'] = resolve(modelDir);
    page.model = './model/';
    page.modelName ??= basename(resolve(modelDir));
  }
  if (imagePath) {
    routes['/image/'] = dirname(resolve(imagePath));
    page.image = `./image/${encodeURIComponent(basename(imagePath))}`;
  }
  routes['/'] = out;
  let browser: Awaited<ReturnType<typeof launchChromium>> | null = null;
  let site: Awaited<ReturnType<typeof serveStatic>> | null = null;
  try {
    log('building the benchmark page...');
    await buildDemo({ outDir: out });
    writeFileSync(join(out, 'models.json'), JSON.stringify(page.model ? [page.model] : []));
    site = await serveStatic(routes);
    browser = await launchChromium();
    const tab = await browser.context.newPage();
    const pageErrors: string[] = [];
    tab.on('pageerror', (e) => pageErrors.push(String(e)));
    tab.on('console', (m) => {
      const text = m.text();
      if (text.startsWith('[bench] ')) log(`  ${text.slice(8)}`);
      else if (m.type() === 'error') log(`  browser ${m.type()}: ${text}`);
    });
    await tab.goto(`${site.url}/bench.html`);
    await tab.waitForFunction(() => 'blip2Bench' in globalThis);
    const version = browser.context.browser()?.version();
    log(`running in headless Chromium ${version ?? ''}`);
    const report = await tab.evaluate(
      async (o) => (globalThis as unknown as { blip2Bench: { run(o: PageRunOptions): Promise<BenchReport> } }).blip2Bench.run(o),
      page,
    );
    if (pageErrors.length) throw new Error(`the benchmark page reported errors: ${pageErrors.join('; ')}`);
    // The page cannot read the CPU model, clock or OS; this driver runs on the same machine.
    report.host = { ...report.host, ...hostAtStart, cpu_cores: report.host.cpu_cores ?? hostAtStart.cpu_cores, source: 'driver' };
    report.runtime = { ...report.runtime, browser_flags: '--enable-unsafe-webgpu --headless=new (playwright-core)' };
    if (modelDir && report.model) for (const m of report.model) m.model.source = resolve(modelDir);
    return validateReport(report);
  } finally {
    await browser?.close();
    await site?.close();
    rmSync(out, { recursive: true, force: true });
  }
}
