// The benchmark page: the kernel and model benchmarks of bench/ on this browser's WebGPU adapter, with progress,
// a text table and the JSON report to download. `npm run bench:kernels -- --browser` drives the same page through
// `globalThis.blip2Bench.run(options)` in headless Chromium.
import { runInPage, browserEnvironment, type PageRunOptions, type ProgressEvent } from '../bench/browser-run.js';
import { formatKernelTable } from '../bench/kernel-runner.js';
import { formatModelRun } from '../bench/model-run.js';
import type { BenchReport } from '../bench/report-schema.js';
import { adapterLabel, getGpu, setShaderBaseUrl } from '../src/index.js';
import { $ } from './dom.js';

setShaderBaseUrl(new URL('./wgsl/', import.meta.url));

const ui = {
  adapter: $('adapter'),
  browser: $('browser'),
  kernelsForm: $<HTMLFormElement>('kernels-form'),
  filter: $<HTMLInputElement>('filter'),
  time: $<HTMLInputElement>('time'),
  peakGflops: $<HTMLInputElement>('peak-gflops'),
  peakGbps: $<HTMLInputElement>('peak-gbps'),
  modelForm: $<HTMLFormElement>('model-form'),
  modelUrl: $<HTMLInputElement>('model-url'),
  modelList: $<HTMLDataListElement>('model-list'),
  imageUrl: $<HTMLInputElement>('image-url'),
  dtype: $<HTMLSelectElement>('dtype'),
  tokens: $<HTMLInputElement>('tokens'),
  runs: $<HTMLInputElement>('runs'),
  label: $<HTMLInputElement>('label'),
  progress: $<HTMLProgressElement>('progress'),
  status: $('status'),
  log: $('log'),
  download: $<HTMLAnchorElement>('download'),
  error: $('error'),
  buttons: [$<HTMLButtonElement>('run-kernels'), $<HTMLButtonElement>('run-model')],
};

let busy = false;
let downloadUrl: string | null = null;

function progress(e: ProgressEvent): void {
  ui.status.textContent = e.message;
  if (e.fraction !== undefined) ui.progress.value = e.fraction;
  ui.log.textContent += `${e.message}\n`;
  ui.log.scrollTop = ui.log.scrollHeight;
  // The Node driver relays these lines to the terminal.
  console.log(`[bench] ${e.message}`);
}

function offerDownload(report: BenchReport): void {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([`${JSON.stringify(report, null, 2)}\n`], { type: 'application/json' }));
  ui.download.href = downloadUrl;
  ui.download.download = `bench-${report.suite}-${report.label.replace(/[^\w.-]+/g, '_')}.json`;
  ui.download.hidden = false;
}

function showReport(report: BenchReport): void {
  const text = report.suite === 'kernels' ? formatKernelTable(report.kernels ?? []) : (report.model ?? []).map(formatModelRun).join('\n\n');
  ui.log.textContent += `\n${text}\n`;
}

/** Runs one benchmark at a time; shows and returns its report. */
async function run(options: PageRunOptions): Promise<BenchReport> {
  if (busy) throw new Error('a benchmark is already running');
  busy = true;
  ui.buttons.forEach((b) => (b.disabled = true));
  ui.error.hidden = true;
  ui.download.hidden = true;
  ui.log.textContent = '';
  ui.progress.removeAttribute('value');
  try {
    const report = await runInPage(options, progress);
    ui.progress.value = 1;
    ui.status.textContent = `done: ${report.suite} benchmark, ${report.label}`;
    showReport(report);
    offerDownload(report);
    return report;
  } catch (e) {
    ui.error.textContent = e instanceof Error ? e.message : String(e);
    ui.error.hidden = false;
    ui.status.textContent = 'failed';
    throw e;
  } finally {
    busy = false;
    ui.buttons.forEach((b) => (b.disabled = false));
  }
}

const num = (input: HTMLInputElement): number | undefined => (input.value.trim() === '' ? undefined : Number(input.value));
const label = () => ui.label.value.trim() || undefined;

ui.kernelsForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void run({ suite: 'kernels', label: label(), filter: ui.filter.value.trim() || undefined, timeMs: num(ui.time), peakGflops: num(ui.peakGflops), peakGbps: num(ui.peakGbps) }).catch(() => {});
});
ui.modelForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void run({
    suite: 'model',
    label: label(),
    model: ui.modelUrl.value.trim(),
    image: ui.imageUrl.value.trim(),
    dtype: ui.dtype.value === 'f32' ? 'f32' : 'f16',
    tokens: num(ui.tokens),
    runs: num(ui.runs),
  }).catch(() => {});
});

(globalThis as { blip2Bench?: { run: typeof run } }).blip2Bench = { run };

void (async () => {
  ui.browser.textContent = browserEnvironment().runtime.browser ?? '';
  try {
    const models = (await (await fetch('./models.json')).json()) as string[];
    for (const m of models) ui.modelList.append(new Option(m, m));
    if (models[0]) ui.modelUrl.value = models[0];
  } catch {
    // a static host without models.json: the URL field stays as it is
  }
  try {
    ui.adapter.textContent = adapterLabel((await getGpu()).caps.adapter);
  } catch (e) {
    ui.adapter.textContent = 'no WebGPU';
    ui.error.textContent = e instanceof Error ? e.message : String(e);
    ui.error.hidden = false;
  }
})();
