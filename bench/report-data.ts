/**
 * What the comparison page (bench/report-page.ts) and the generated docs (scripts/measured-docs.ts) show, computed
 * from reports: kernel rows across reports with speed ratios to a baseline, roofline points and ceilings, model
 * metrics per run, stage bars. No DOM and no Node here, so both sides (and the tests) compute the same numbers.
 */
import type { BenchReport, KernelResult, ModelRun } from './report-schema.js';

/** Labels made unique ('x', 'x #2', ...) in report order. */
export function uniqueLabels(reports: readonly BenchReport[]): string[] {
  const seen = new Map<string, number>();
  return reports.map((r) => {
    const n = (seen.get(r.label) ?? 0) + 1;
    seen.set(r.label, n);
    return n === 1 ? r.label : `${r.label} #${n}`;
  });
}

/** How many times faster than the baseline (baseline time / this time); null when either is missing. */
export function speedRatio(baselineMs: number | null | undefined, ms: number | null | undefined): number | null {
  if (baselineMs == null || ms == null || !(baselineMs > 0) || !(ms > 0)) return null;
  return baselineMs / ms;
}

export interface KernelRow {
  kernel: string;
  shape: string;
  dtype: string;
  peer?: string;
  /** One per report (same order); null where that report has no such case. */
  cells: (KernelResult | null)[];
}

const kernelKey = (k: { kernel: string; shape: string; dtype: string }) => `${k.kernel}\u0000${k.shape}\u0000${k.dtype}`;

/** Every (kernel, shape, dtype) of any report, in first-seen order, with each report's result. */
export function kernelRows(reports: readonly BenchReport[]): KernelRow[] {
  const rows = new Map<string, KernelRow>();
  reports.forEach((r, i) => {
    for (const k of r.kernels ?? []) {
      const key = kernelKey(k);
      let row = rows.get(key);
      if (!row) {
        row = { kernel: k.kernel, shape: k.shape, dtype: k.dtype, cells: reports.map(() => null) };
        if (k.peer) row.peer = k.peer;
        rows.set(key, row);
      }
      row.cells[i] = k;
    }
  });
  return [...rows.values()];
}

export interface RooflinePoint {
  report: string;
  peer: boolean;
  kernel: string;
  shape: string;
  dtype: string;
  /** flops / bytes. */
  intensity: number;
  gflops: number;
}

/** Kernel results that have both work counts and a time: where they sit under the roofline. */
export function rooflinePoints(reports: readonly BenchReport[]): RooflinePoint[] {
  const labels = uniqueLabels(reports);
  const points: RooflinePoint[] = [];
  reports.forEach((r, i) => {
    for (const k of r.kernels ?? []) {
      if (k.ms === null || !k.flops || !k.bytes) continue;
      points.push({
        report: labels[i]!,
        peer: r.engine.peer || k.peer !== undefined,
        kernel: k.kernel,
        shape: k.shape,
        dtype: k.dtype,
        intensity: k.flops / k.bytes,
        gflops: k.flops / (k.ms * 1e6),
      });
    }
  });
  return points;
}

export interface CeilingPoint {
  report: string;
  intensity: number;
  gflops: number;
}

/** Each report's roofline, min(peak GFLOP/s, intensity x GB/s), sampled on a log grid over [lo, hi]. */
export function rooflineCeilings(reports: readonly BenchReport[], lo: number, hi: number, samples = 64): CeilingPoint[] {
  const labels = uniqueLabels(reports);
  const out: CeilingPoint[] = [];
  reports.forEach((r, i) => {
    const roof = r.roofline;
    if (!roof || !(roof.gflops > 0) || !(roof.gbps > 0) || !r.kernels?.length) return;
    const ridge = roof.gflops / roof.gbps;
    const xs = Array.from({ length: samples }, (_, s) => lo * (hi / lo) ** (s / (samples - 1)));
    if (ridge > lo && ridge < hi) xs.push(ridge);
    xs.sort((a, b) => a - b);
    for (const x of xs) out.push({ report: labels[i]!, intensity: x, gflops: Math.min(roof.gflops, x * roof.gbps) });
  });
  return out;
}

/** One model run of one report: a column of the model tables. */
export interface ModelColumn {
  report: string;
  reportIndex: number;
  peer: boolean;
  engine: string;
  run: ModelRun;
  /** report label + variant, e.g. 'lavapipe node · f16'. */
  title: string;
}

export function variantText(run: ModelRun): string {
  const v = run.variant;
  const extra = Object.entries(v)
    .filter(([k, val]) => k !== 'dtype' && val !== undefined && val !== null && !(k === 'kv_cache' && val === 'f32'))
    .map(([k, val]) => `${k} ${String(val)}`);
  return [v.dtype, ...extra].join(', ');
}

/** Model runs grouped by model name (a table per model), in first-seen order. */
export function modelGroups(reports: readonly BenchReport[]): { model: string; columns: ModelColumn[] }[] {
  const labels = uniqueLabels(reports);
  const groups = new Map<string, ModelColumn[]>();
  reports.forEach((r, i) => {
    for (const run of r.model ?? []) {
      const name = run.model.name;
      if (!groups.has(name)) groups.set(name, []);
      groups.get(name)!.push({
        report: labels[i]!,
        reportIndex: i,
        peer: r.engine.peer,
        engine: `${r.engine.name}${r.engine.version ? ` ${r.engine.version}` : ''}`,
        run,
        title: `${labels[i]} · ${variantText(run)}`,
      });
    }
  });
  return [...groups].map(([model, columns]) => ({ model, columns }));
}

export interface ModelMetric {
  key: string;
  label: string;
  unit: 'ms' | 's' | 'bytes' | 'tokens/s' | 'count';
  /** True when a smaller value is better (times); ratios are then baseline / value. */
  lowerIsBetter: boolean;
  get(run: ModelRun): number | undefined;
}

const stage = (k: string) => (r: ModelRun) => r.stages[k];
const e2e = (k: 'processor_ms' | 'vision_ms' | 'qformer_ms' | 'prefill_ms' | 'ttft_ms' | 'decode_tokens_per_s' | 'total_ms') => (r: ModelRun) => r.e2e?.[k];

export const MODEL_METRICS: ModelMetric[] = [
  { key: 'load_s', label: 'load', unit: 's', lowerIsBetter: true, get: (r) => r.load_s ?? undefined },
  { key: 'weights_bytes', label: 'weights on the device', unit: 'bytes', lowerIsBetter: true, get: (r) => r.memory.weights_bytes },
  { key: 'peak_device_bytes', label: 'peak device memory', unit: 'bytes', lowerIsBetter: true, get: (r) => r.memory.peak_device_bytes },
  { key: 'peak_host_bytes', label: 'peak host memory (RSS)', unit: 'bytes', lowerIsBetter: true, get: (r) => r.memory.peak_host_bytes },
  { key: 'e2e.processor_ms', label: 'cold: processor', unit: 'ms', lowerIsBetter: true, get: e2e('processor_ms') },
  { key: 'e2e.vision_ms', label: 'cold: vision tower', unit: 'ms', lowerIsBetter: true, get: e2e('vision_ms') },
  { key: 'e2e.qformer_ms', label: 'cold: Q-Former + projection', unit: 'ms', lowerIsBetter: true, get: e2e('qformer_ms') },
  { key: 'e2e.prefill_ms', label: 'cold: prefill + first token', unit: 'ms', lowerIsBetter: true, get: e2e('prefill_ms') },
  { key: 'e2e.ttft_ms', label: 'cold: time to first token', unit: 'ms', lowerIsBetter: true, get: e2e('ttft_ms') },
  { key: 'e2e.decode_tokens_per_s', label: 'cold: decode tokens/s', unit: 'tokens/s', lowerIsBetter: false, get: e2e('decode_tokens_per_s') },
  { key: 'e2e.total_ms', label: 'cold: whole caption', unit: 'ms', lowerIsBetter: true, get: e2e('total_ms') },
  { key: 'stages.processor_ms', label: 'warm: processor', unit: 'ms', lowerIsBetter: true, get: stage('processor_ms') },
  { key: 'stages.vision_ms', label: 'warm: vision tower', unit: 'ms', lowerIsBetter: true, get: stage('vision_ms') },
  { key: 'stages.qformer_ms', label: 'warm: Q-Former + projection', unit: 'ms', lowerIsBetter: true, get: stage('qformer_ms') },
  { key: 'stages.prefill_ms', label: 'warm: prefill + first token', unit: 'ms', lowerIsBetter: true, get: stage('prefill_ms') },
  { key: 'stages.decode_ms_per_token', label: 'warm: decode per token', unit: 'ms', lowerIsBetter: true, get: stage('decode_ms_per_token') },
  { key: 'prefill_tokens', label: 'prefill tokens', unit: 'count', lowerIsBetter: false, get: (r) => r.prefill_tokens },
];

/** Metrics any of `runs` has, plus the free-form numeric `metrics` and extra `stages` keys they carry. */
export function metricsOf(runs: readonly ModelRun[]): ModelMetric[] {
  const known = MODEL_METRICS.filter((m) => runs.some((r) => m.get(r) !== undefined));
  const standard = new Set(['processor_ms', 'vision_ms', 'qformer_ms', 'prefill_ms', 'decode_ms_per_token']);
  const extraStages = [...new Set(runs.flatMap((r) => Object.keys(r.stages)))].filter((k) => !standard.has(k));
  const extraMetrics = [...new Set(runs.flatMap((r) => Object.entries(r.metrics ?? {}).filter(([, v]) => typeof v === 'number').map(([k]) => k)))];
  return [
    ...known,
    ...extraStages.map((k): ModelMetric => ({ key: `stages.${k}`, label: `warm: ${k}`, unit: k.endsWith('_ms') ? 'ms' : 'count', lowerIsBetter: k.endsWith('_ms'), get: stage(k) })),
    ...extraMetrics.map((k): ModelMetric => ({ key: `metrics.${k}`, label: k, unit: k.endsWith('_ms') || k.includes('_ms_') ? 'ms' : 'count', lowerIsBetter: k.includes('ms'), get: (r) => r.metrics?.[k] as number | undefined })),
  ];
}

/** Speed ratio of a metric against the baseline's value (>1: better than the baseline). */
export function metricRatio(m: ModelMetric, baseline: number | undefined, value: number | undefined): number | null {
  if (baseline === undefined || value === undefined || !(baseline > 0) || !(value > 0) || m.unit === 'bytes' || m.unit === 'count') return null;
  return m.lowerIsBetter ? baseline / value : value / baseline;
}

/** The baseline report's run for a column's model: same dtype if it has one, else its first run of that model. */
export function baselineRun(columns: readonly ModelColumn[], baseline: number, run: ModelRun): ModelRun | undefined {
  const base = columns.filter((c) => c.reportIndex === baseline);
  return (base.find((c) => c.run.variant.dtype === run.variant.dtype) ?? base[0])?.run;
}

export interface StageBar {
  column: string;
  peer: boolean;
  phase: 'cold (first caption)' | 'warm (median)';
  stage: string;
  ms: number;
}

/** The stage times of every model run, cold end-to-end and warm, for the stage bar charts. */
export function stageBars(columns: readonly ModelColumn[]): StageBar[] {
  const bars: StageBar[] = [];
  for (const c of columns) {
    const e = c.run.e2e;
    const add = (phase: StageBar['phase'], stageName: string, ms: number | undefined) => {
      if (ms !== undefined && ms > 0) bars.push({ column: c.title, peer: c.peer, phase, stage: stageName, ms });
    };
    if (e) {
      add('cold (first caption)', 'processor', e.processor_ms);
      add('cold (first caption)', 'vision', e.vision_ms);
      add('cold (first caption)', 'Q-Former', e.qformer_ms);
      add('cold (first caption)', 'prefill', e.prefill_ms);
      add('cold (first caption)', 'decode / token', e.decode_tokens ? e.decode_ms / e.decode_tokens : undefined);
    }
    const s = c.run.stages;
    add('warm (median)', 'processor', s.processor_ms);
    add('warm (median)', 'vision', s.vision_ms);
    add('warm (median)', 'Q-Former', s.qformer_ms);
    add('warm (median)', 'prefill', s.prefill_ms);
    add('warm (median)', 'decode / token', s.decode_ms_per_token);
  }
  return bars;
}

/** Fixed formatting shared by the page, the docs and the tests. */
export function formatNumber(v: number, unit: ModelMetric['unit'] | 'gflops' | 'gbps' | 'ratio' | 'percent'): string {
  switch (unit) {
    case 'ms':
      return v >= 10_000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : v >= 1 ? `${v.toFixed(2)} ms` : `${v.toFixed(3)} ms`;
    case 's':
      return `${v.toFixed(2)} s`;
    case 'bytes':
      return v >= 2 ** 30 ? `${(v / 2 ** 30).toFixed(2)} GiB` : v >= 2 ** 20 ? `${(v / 2 ** 20).toFixed(1)} MiB` : `${(v / 1024).toFixed(1)} KiB`;
    case 'tokens/s':
      return `${v >= 100 ? v.toFixed(0) : v.toFixed(2)} tok/s`;
    case 'gflops':
    case 'gbps':
      return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    case 'ratio':
      return `${v >= 10 ? v.toFixed(1) : v.toFixed(2)}x`;
    case 'percent':
      return `${(100 * v).toFixed(1)}%`;
    case 'count':
      return String(v);
  }
}
