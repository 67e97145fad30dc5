/**
 * Compares benchmark reports in one self-contained HTML page: the reports (adapter, runtime, host, code), a table of
 * every kernel and shape across them with speed ratios to a baseline, a roofline chart, and per model a table of
 * load, memory, cold end-to-end and warm stage times with stage bars. Charts by Observable Plot, bundled into the
 * page: it needs no network and opens from disk.
 *
 *   npm run bench:report -- A.json B.json ... --out report.html [--baseline LABEL|N] [--title TEXT]
 *
 * Reports of any version are read (bench/report-upgrade.ts); peers (transformers, tfjs) are marked as such.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { uniqueLabels } from './report-data.js';
import { readReport } from './report-files.js';
import type { BenchReport } from './report-schema.js';

const PAGE_SCRIPT = fileURLToPath(new URL('./report-page.ts', import.meta.url));

const STYLE = `
:root { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2330; background: #fff; }
body { margin: 0 auto; max-width: 1200px; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; } h3 { font-size: 1rem; }
p.sub, .meta { color: #5d6677; }
table { border-collapse: collapse; font-size: .8rem; }
th, td { border: 1px solid #d8dde6; padding: .2rem .45rem; vertical-align: top; }
thead th { background: #f2f4f8; position: sticky; top: 0; }
th.baseline { background: #e7efff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better { color: #137333; } td.worse { color: #b42318; }
td.error, div.error { color: #b42318; }
td.code { font-family: ui-monospace, monospace; font-size: .75rem; }
.peer { display: inline-block; font-size: .65rem; padding: 0 .3rem; border-radius: 4px; background: #fde8c8; color: #7a4b00; vertical-align: middle; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: .5rem 0; }
`;

/** The page's script: report-page.ts and Observable Plot, one minified bundle. */
async function pageScript(): Promise<string> {
  const result = await build({ entryPoints: [PAGE_SCRIPT], bundle: true, format: 'iife', platform: 'browser', target: 'es2020', minify: true, write: false, logLevel: 'error', legalComments: 'none' });
  return result.outputFiles[0]!.text;
}

/** JSON or script text that is safe inside <script>: no '</script' or '<!--' can end or bend it. */
function scriptSafe(text: string): string {
  return text.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

export interface ReportPageOptions {
  baseline?: string;
  title?: string;
}

/** Index of the baseline: a label (as made unique), a 0-based index, or the first report. */
export function resolveBaseline(reports: readonly BenchReport[], baseline: string | undefined): number {
  if (baseline === undefined) return 0;
  const labels = uniqueLabels(reports);
  const byLabel = labels.indexOf(baseline);
  if (byLabel >= 0) return byLabel;
  if (/^\d+$/.test(baseline) && Number(baseline) < reports.length) return Number(baseline);
  throw new Error(`--baseline ${baseline}: no report has that label (labels: ${labels.join(', ')}) and it is no index below ${reports.length}`);
}

export async function reportHtml(reports: BenchReport[], options: ReportPageOptions = {}): Promise<string> {
  if (!reports.length) throw new Error('no reports to compare');
  const baseline = resolveBaseline(reports, options.baseline);
  const labels = uniqueLabels(reports);
  const title = options.title ?? (labels.length <= 4 ? `Benchmarks: ${labels.join(' · ')}` : `Benchmarks: ${labels.length} reports`);
  const embedded = scriptSafe(JSON.stringify({ reports, baseline, title }));
  const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<h1 id="title">${escapeHtml(title)}</h1>
<p class="sub">blip2-webgpu benchmark reports (schema blip2-webgpu/bench-report), made by <code>npm run bench:report</code> on ${new Date().toISOString().slice(0, 10)}. A speed claim holds for one machine at one time: compare ratios measured side by side.</p>
<main id="main"><p>This page draws its tables and charts with JavaScript.</p></main>
<script id="report-data" type="application/json">${embedded}</script>
<script>${scriptSafe(await pageScript())}</script>
</body>
</html>
`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string' }, baseline: { type: 'string' }, title: { type: 'string' } },
  });
  if (!values.out || positionals.length === 0) {
    console.error('usage: npm run bench:report -- A.json B.json ... --out report.html [--baseline LABEL|N] [--title TEXT]');
    process.exit(2);
  }
  const reports = positionals.map(readReport);
  const html = await reportHtml(reports, { baseline: values.baseline, title: values.title });
  writeFileSync(values.out, html);
  const kernels = reports.reduce((n, r) => n + (r.kernels?.length ?? 0), 0);
  const runs = reports.reduce((n, r) => n + (r.model?.length ?? 0), 0);
  console.log(`wrote ${values.out}: ${reports.length} reports (${kernels} kernel results, ${runs} model runs), ${(html.length / 1024).toFixed(0)} KiB`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
