// bench:report's page in headless Chromium: it renders without errors, every number it shows equals the reports'
// JSON, the charts hold one mark per data point, and choosing another baseline recomputes the ratios.
// BLIP2_REPORT_SCREENSHOT=docs/report-screenshot.png saves a screenshot of the page.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatNumber, kernelRows, metricsOf, modelGroups, rooflinePoints, speedRatio, stageBars, uniqueLabels } from '../../bench/report-data.js';
import { readReport } from '../../bench/report-files.js';
import type { BenchReport } from '../../bench/report-schema.js';
import { reportHtml } from '../../bench/report.js';
import { launchChromium } from '../support/browser.js';
import { serveStatic } from '../support/static-server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
// Node and browser kernels, our model runs in both and the transformers peer, and converted history.
const FILES = ['lavapipe-node-kernels', 'swiftshader-chromium-kernels', 'h200-kernels', 'lavapipe-node-model-tiny', 'swiftshader-chromium-model-tiny', 'transformers-cpu-model-tiny', 'h200-model-f16'];
const reports: BenchReport[] = FILES.map((f) => readReport(join(root, 'docs/measurements', `${f}.json`)));
const labels = uniqueLabels(reports);
const out = mkdtempSync(join(tmpdir(), 'blip2-report-'));
let site: Awaited<ReturnType<typeof serveStatic>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const errors: string[] = [];

interface Cell {
  text: string;
  value: string | null;
  field: string | null;
  report: string | null;
}

async function tableCells(selector: string, rowAttr: string): Promise<Record<string, Cell[]>> {
  return page.$$eval(
    `${selector} tbody tr`,
    (rows, attr) =>
      Object.fromEntries(
        rows.map((tr) => [
          attr === 'kernel' ? `${tr.getAttribute('data-kernel')}|${tr.getAttribute('data-shape')}|${tr.getAttribute('data-dtype')}` : tr.getAttribute(`data-${attr}`)!,
          Array.from(tr.querySelectorAll('td[data-report]')).map((td) => ({ text: td.textContent ?? '', value: td.getAttribute('data-value'), field: td.getAttribute('data-field'), report: td.getAttribute('data-report') })),
        ]),
      ),
    rowAttr,
  );
}

beforeAll(async () => {
  writeFileSync(join(out, 'report.html'), await reportHtml(reports, { baseline: labels[0] }));
  site = await serveStatic({ '/': out });
  browser = await launchChromium();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(site.url)) errors.push(`request outside the page: ${r.url()}`);
  });
  await page.setViewportSize({ width: 1250, height: 1000 });
  await page.goto(`${site.url}/report.html`);
  await page.waitForFunction(() => document.body.dataset.rendered === '1');
  if (process.env.BLIP2_REPORT_SCREENSHOT) await page.screenshot({ path: process.env.BLIP2_REPORT_SCREENSHOT, fullPage: true });
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  rmSync(out, { recursive: true, force: true });
});

describe('bench:report page (headless Chromium)', () => {
  it('renders without errors or network requests beyond the page', () => {
    expect(errors).toEqual([]);
  });

  it('lists every report, peers marked', async () => {
    const rows = await page.$$eval('#reports tbody tr', (trs) => trs.map((tr) => ({ label: tr.querySelector('td.label')!.textContent!, peer: tr.querySelector('.peer') !== null })));
    expect(rows.map((r) => r.label.replace(/ peer$/, ''))).toEqual(labels);
    expect(rows.map((r) => r.peer)).toEqual(reports.map((r) => r.engine.peer));
  });

  it('shows every kernel and shape of every report, with the JSON times and the ratios to the baseline', async () => {
    const cells = await tableCells('#kernel-table', 'kernel');
    const rows = kernelRows(reports);
    expect(Object.keys(cells).length).toBe(rows.length);
    let checked = 0;
    for (const row of rows) {
      const shown = cells[`${row.kernel}|${row.shape}|${row.dtype}`]!;
      expect(shown).toBeDefined();
      row.cells.forEach((k, i) => {
        if (!reports[i]!.kernels) return;
        const ms = shown.find((c) => c.report === String(i) && c.field === 'ms');
        if (!k) return expect(ms?.value ?? null).toBeNull();
        if (k.ms === null) return expect(shown.find((c) => c.report === String(i))!.text).toBe('failed');
        expect(Number(ms!.value)).toBe(k.ms);
        expect(ms!.text).toBe(formatNumber(k.ms, 'ms'));
        const ratio = shown.find((c) => c.report === String(i) && c.field === 'ratio')!;
        const want = speedRatio(row.cells[0]?.ms, k.ms);
        expect(ratio.value === null ? null : Number(ratio.value)).toBe(want);
        checked++;
      });
    }
    expect(checked).toBe(reports.reduce((n, r) => n + (r.kernels ?? []).filter((k) => k.ms !== null).length, 0));
  });

  it('plots one roofline point per kernel result with work counts, and a ceiling per report with peaks', async () => {
    const count = (d: string) => page.$$eval(`#roofline g[aria-description="${d}"] > *`, (els) => els.length);
    expect(await count('roofline points')).toBe(rooflinePoints(reports).length);
    expect(await count('roofline ceilings')).toBe(reports.filter((r) => r.kernels?.length && r.roofline && r.roofline.gflops > 0 && r.roofline.gbps > 0).length);
  });

  it('shows every model metric of every run as in the JSON, and its stage bars', async () => {
    for (const group of modelGroups(reports)) {
      const cells = await tableCells(`table.model-table[data-model="${group.model}"]`, 'metric');
      for (const m of metricsOf(group.columns.map((c) => c.run))) {
        const shown = cells[m.key]!;
        expect(shown, m.key).toBeDefined();
        group.columns.forEach((c, ci) => {
          const v = m.get(c.run);
          const cell = shown.filter((x) => x.field === 'value')[ci]!;
          if (v === undefined) return expect(cell.value).toBeNull();
          expect(Number(cell.value)).toBe(v);
          expect(cell.text).toBe(formatNumber(v, m.unit));
        });
      }
      const section = `section[id="model-${group.model}"]`;
      const bars = stageBars(group.columns);
      const warm = await page.$$eval(`${section} g[aria-description="warm stage bars"] rect`, (els) => els.length);
      const cold = await page.$$eval(`${section} g[aria-description="cold stage ticks"] line`, (els) => els.length);
      expect(warm + cold).toBe(bars.length);
    }
  });

  it('recomputes the ratios for another baseline', async () => {
    const b = reports.findIndex((r) => r.label === 'swiftshader chromium' || r.runtime.kind === 'browser');
    await page.selectOption('#baseline', String(b));
    await page.waitForFunction(() => document.body.dataset.rendered === '2');
    const cells = await tableCells('#kernel-table', 'kernel');
    for (const row of kernelRows(reports)) {
      const k = row.cells[0];
      if (!k || k.ms === null) continue;
      const ratio = cells[`${row.kernel}|${row.shape}|${row.dtype}`]!.find((c) => c.report === '0' && c.field === 'ratio')!;
      const want = speedRatio(row.cells[b]?.ms, k.ms);
      expect(ratio.value === null ? null : Number(ratio.value)).toBe(want);
    }
  });
});
