// The comparison page's script (bundled into the self-contained HTML by bench/report.ts): reads the embedded
// reports, draws the tables (every number carries its exact value in data-value) and the charts with Observable
// Plot. The baseline can be changed on the page; tables and ratios follow.
import * as Plot from '@observablehq/plot';
import {
  baselineRun,
  formatNumber,
  kernelRows,
  metricRatio,
  metricsOf,
  modelGroups,
  rooflineCeilings,
  rooflinePoints,
  speedRatio,
  stageBars,
  uniqueLabels,
  type StageBar,
} from './report-data.js';
import type { BenchReport } from './report-schema.js';

interface Embedded {
  reports: BenchReport[];
  baseline: number;
  title: string;
}

const data = JSON.parse(document.getElementById('report-data')!.textContent!) as Embedded;
const reports = data.reports;
const labels = uniqueLabels(reports);
let baseline = data.baseline;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** A table cell showing a formatted number, with the exact value for tests and copy-paste. */
function numCell(v: number | null | undefined, unit: Parameters<typeof formatNumber>[1], attrs: Record<string, string> = {}): HTMLTableCellElement {
  if (v === null || v === undefined) return el('td', { class: 'num empty', ...attrs }, '');
  const ratioClass = unit === 'ratio' ? (v >= 1.05 ? ' better' : v <= 0.95 ? ' worse' : '') : '';
  return el('td', { class: `num${ratioClass}`, 'data-value': String(v), ...attrs }, formatNumber(v, unit));
}

function peerBadge(): HTMLElement {
  return el('span', { class: 'peer' }, 'peer');
}

function section(id: string, title: string, ...body: Node[]): HTMLElement {
  return el('section', { id }, el('h2', {}, title), ...body);
}

// ------------------------------------------------------------------ the reports compared

function reportsTable(): HTMLElement {
  const head = el('tr', {}, ...['report', 'engine', 'runtime', 'adapter', 'host CPU', 'timing', 'roofline', 'code', 'date'].map((h) => el('th', {}, h)));
  const rows = reports.map((r, i) => {
    const rt = r.runtime;
    const runtime = rt.kind === 'browser' ? (rt.browser ?? 'browser') : rt.kind === 'node' ? `Node ${rt.node ?? ''}${rt.dawn ? `, ${rt.dawn}` : ''}` : `Python ${rt.python ?? ''}`;
    const cpu = [r.host.cpu_model, r.host.cpu_cores ? `${r.host.cpu_cores} cores` : '', r.host.cpu_simd].filter(Boolean).join(', ');
    const roof = r.roofline ? `${formatNumber(r.roofline.gflops, 'gflops')} GFLOP/s, ${formatNumber(r.roofline.gbps, 'gbps')} GB/s` : '';
    const code = r.project.commit ? `${r.project.commit.slice(0, 10)}${r.project.dirty ? ' (modified)' : ''}` : (r.converted_from ?? '');
    const name = el('td', { class: 'label' }, labels[i]!);
    if (r.engine.peer) name.append(' ', peerBadge());
    return el(
      'tr',
      { 'data-report': String(i) },
      name,
      el('td', {}, `${r.engine.name}${r.engine.version ? ` ${r.engine.version}` : ''}${r.engine.backend ? ` (${r.engine.backend})` : ''}`),
      el('td', {}, runtime),
      el('td', { title: r.adapter ? `features: ${r.adapter.features.join(', ')}` : '' }, r.adapter?.label ?? ''),
      el('td', {}, cpu),
      el('td', {}, r.timing),
      el('td', { title: r.roofline?.source ?? '' }, roof),
      el('td', { class: 'code' }, code),
      el('td', {}, r.created.slice(0, 10)),
    );
  });
  const select = el('select', { id: 'baseline' }, ...labels.map((l, i) => el('option', { value: String(i), ...(i === baseline ? { selected: '' } : {}) }, l)));
  select.addEventListener('change', () => {
    baseline = Number(select.value);
    render();
  });
  return section(
    'reports',
    'Reports',
    el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)),
    el('p', {}, el('label', {}, 'Ratios against ', select), ' — ratios are speed relative to this baseline: ', el('b', {}, '2.00x'), ' = twice as fast. Peers (other implementations) are marked ', peerBadge(), '.'),
  );
}

// ------------------------------------------------------------------ kernels

function kernelsSection(): HTMLElement | null {
  const rows = kernelRows(reports);
  if (!rows.length) return null;
  const kernelReports = reports.map((r, i) => ({ r, i })).filter(({ r }) => r.kernels?.length);
  const head1 = el('tr', {}, el('th', { rowspan: '2' }, 'kernel'), el('th', { rowspan: '2' }, 'shape'), el('th', { rowspan: '2' }, 'dtype'));
  const head2 = el('tr', {});
  for (const { r, i } of kernelReports) {
    const th = el('th', { colspan: '2', class: i === baseline ? 'baseline' : '' }, labels[i]!);
    if (r.engine.peer) th.append(' ', peerBadge());
    head1.append(th);
    head2.append(el('th', {}, r.timing === 'gpu-timestamps' ? 'ms (GPU)' : 'ms'), el('th', {}, 'vs base'));
  }
  const body = rows.map((row) => {
    const tr = el('tr', { 'data-kernel': row.kernel, 'data-shape': row.shape, 'data-dtype': row.dtype });
    const kernelCell = el('td', {}, row.kernel);
    if (row.peer) kernelCell.append(' ', el('span', { class: 'peer', title: row.peer }, 'peer'));
    tr.append(kernelCell, el('td', {}, row.shape), el('td', {}, row.dtype));
    const base = row.cells[baseline]?.ms ?? null;
    for (const { i } of kernelReports) {
      const c = row.cells[i];
      const attrs: Record<string, string> = { 'data-report': String(i) };
      if (c?.error) {
        tr.append(el('td', { class: 'error', colspan: '2', title: c.error, ...attrs }, 'failed'));
        continue;
      }
      const details = c ? [c.gflops !== undefined ? `${formatNumber(c.gflops, 'gflops')} GFLOP/s` : '', c.gbps !== undefined ? `${formatNumber(c.gbps, 'gbps')} GB/s` : '', c.roofline_fraction !== undefined ? `${formatNumber(c.roofline_fraction, 'percent')} of roofline` : ''].filter(Boolean).join(', ') : '';
      tr.append(numCell(c?.ms, 'ms', { ...attrs, 'data-field': 'ms', title: details }), numCell(speedRatio(base, c?.ms), 'ratio', { ...attrs, 'data-field': 'ratio' }));
    }
    return tr;
  });
  return section(
    'kernels',
    'Kernels',
    el('p', {}, `Every kernel and shape of any report (${rows.length}); time per call, and speed relative to the baseline's time for the same case. Hover a time for GFLOP/s, GB/s and the roofline fraction.`),
    el('div', { class: 'scroll' }, el('table', { id: 'kernel-table' }, el('thead', {}, head1, head2), el('tbody', {}, ...body))),
  );
}

function rooflineChart(): HTMLElement | null {
  const points = rooflinePoints(reports);
  if (!points.length) return null;
  const xs = points.map((p) => p.intensity);
  const lo = Math.min(...xs) / 2;
  const hi = Math.max(...xs) * 2;
  const ceilings = rooflineCeilings(reports, lo, hi);
  const chart = Plot.plot({
    width: 980,
    height: 520,
    marginLeft: 60,
    x: { type: 'log', label: 'arithmetic intensity (flop / byte) →', domain: [lo, hi], grid: true },
    y: { type: 'log', label: '↑ achieved GFLOP/s', grid: true },
    color: { legend: true, domain: labels.filter((_, i) => reports[i]!.kernels?.length) },
    symbol: { legend: true, domain: ['ours', 'peer'], range: ['circle', 'triangle'] },
    marks: [
      Plot.line(ceilings, { x: 'intensity', y: 'gflops', stroke: 'report', strokeDasharray: '6,3', strokeOpacity: 0.8, ariaDescription: 'roofline ceilings' }),
      Plot.dot(points, {
        x: 'intensity',
        y: 'gflops',
        stroke: 'report',
        fill: 'report',
        fillOpacity: 0.35,
        symbol: (p: (typeof points)[number]) => (p.peer ? 'peer' : 'ours'),
        r: 4,
        title: (p: (typeof points)[number]) => `${p.report}\n${p.kernel} ${p.shape} ${p.dtype}\n${formatNumber(p.gflops, 'gflops')} GFLOP/s at ${p.intensity.toFixed(2)} flop/byte`,
        ariaDescription: 'roofline points',
      }),
    ],
  });
  return section(
    'roofline',
    'Roofline',
    el('p', {}, "Each kernel case with a FLOP count: achieved GFLOP/s against flops per byte that must move; dashed: each report's roofline, min(peak GFLOP/s, intensity x peak GB/s), from its adapter's peaks (reports table). Hover a point for the case."),
    chart,
  );
}

// ------------------------------------------------------------------ model and end to end

function modelSections(): HTMLElement[] {
  const out: HTMLElement[] = [];
  for (const group of modelGroups(reports)) {
    const metrics = metricsOf(group.columns.map((c) => c.run));
    // Without a run of this model in the baseline report, the table's first run is its baseline.
    const groupBaseline = group.columns.some((c) => c.reportIndex === baseline) ? baseline : group.columns[0]!.reportIndex;
    const head = el('tr', {}, el('th', {}, 'metric'));
    for (const c of group.columns) {
      const th = el('th', { colspan: '2', class: c.reportIndex === groupBaseline ? 'baseline' : '' }, c.title);
      if (c.peer) th.append(' ', peerBadge());
      if (c.run.error) th.append(el('div', { class: 'error', title: c.run.error }, 'failed'));
      head.append(th);
    }
    const body = metrics.map((m) => {
      const tr = el('tr', { 'data-metric': m.key }, el('th', { scope: 'row' }, m.label));
      for (const [ci, c] of group.columns.entries()) {
        const value = m.get(c.run);
        const base = baselineRun(group.columns, groupBaseline, c.run);
        const attrs = { 'data-report': String(c.reportIndex), 'data-column': String(ci) };
        tr.append(numCell(value, m.unit, { ...attrs, 'data-field': 'value' }), numCell(metricRatio(m, base ? m.get(base) : undefined, value), 'ratio', { ...attrs, 'data-field': 'ratio' }));
      }
      return tr;
    });
    const dims = group.columns.find((c) => c.run.model.dims)?.run.model.dims;
    const what = dims
      ? `vision ${dims.vision_layers} x ${dims.vision_hidden} (${dims.vision_heads} heads), Q-Former ${dims.qformer_layers} x ${dims.qformer_hidden}, OPT ${dims.text_layers} x ${dims.text_hidden} (${dims.text_heads} heads), vocabulary ${dims.vocab_size}, ${dims.image_size}px images`
      : 'dimensions not recorded';
    const bars = stageBars(group.columns);
    const STAGES = ['processor', 'vision', 'Q-Former', 'prefill', 'decode / token'];
    const warm = bars.filter((b) => b.phase === 'warm (median)');
    const cold = bars.filter((b) => b.phase === 'cold (first caption)');
    const runsShown = new Set(bars.map((b) => b.column)).size;
    const chart = bars.length
      ? Plot.plot({
          width: 980,
          height: 60 + runsShown * (STAGES.length * 16 + 24),
          marginLeft: 110,
          marginRight: 250,
          x: { type: 'log', label: 'ms (log scale) →', grid: true },
          y: { label: null, domain: STAGES },
          fy: { label: null },
          color: { legend: true, domain: STAGES },
          marks: [
            Plot.barX(warm, {
              x1: Math.min(...bars.map((b) => b.ms)) / 2,
              x2: 'ms',
              y: 'stage',
              fy: 'column',
              fill: 'stage',
              fillOpacity: 0.85,
              title: (b: StageBar) => `${b.column}${b.peer ? ' (peer)' : ''}\nwarm: ${b.stage} ${formatNumber(b.ms, 'ms')}`,
              ariaDescription: 'warm stage bars',
            }),
            Plot.tickX(cold, {
              x: 'ms',
              y: 'stage',
              fy: 'column',
              stroke: 'black',
              strokeWidth: 2,
              title: (b: StageBar) => `${b.column}${b.peer ? ' (peer)' : ''}\ncold: ${b.stage} ${formatNumber(b.ms, 'ms')}`,
              ariaDescription: 'cold stage ticks',
            }),
          ],
        })
      : el('p', {}, 'no stage times');
    out.push(
      section(
        `model-${group.model}`,
        `Model: ${group.model}`,
        el('p', {}, `${what}. Cold: one caption right after loading (pipeline compilation included); warm: medians of the runs after it. Ratios: speed against ${groupBaseline === baseline ? "the baseline's" : `${labels[groupBaseline]}'s (the baseline report has none)`} run of this model, same dtype where it has one; memory has none.`),
        el('div', { class: 'scroll' }, el('table', { class: 'model-table', 'data-model': group.model }, el('thead', {}, head), el('tbody', {}, ...body))),
        el('h3', {}, 'Stages per run'),
        el('p', {}, 'Bars: warm medians; black ticks: the cold first caption (pipeline compilation included).'),
        chart,
      ),
    );
  }
  return out;
}

function notesSection(): HTMLElement | null {
  const items = reports.flatMap((r, i) => [...(r.notes ?? []), ...(r.converted_from ? [`converted from ${r.converted_from}`] : [])].map((n) => el('li', {}, el('b', {}, `${labels[i]}: `), n)));
  return items.length ? section('notes', 'Notes', el('ul', {}, ...items)) : null;
}

function render(): void {
  const main = document.getElementById('main')!;
  main.replaceChildren(...[reportsTable(), rooflineChart(), kernelsSection(), ...modelSections(), notesSection()].filter((s): s is HTMLElement => s !== null));
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered ?? '0') + 1);
  document.body.dataset.baseline = String(baseline);
}

document.title = data.title;
document.getElementById('title')!.textContent = data.title;
render();
