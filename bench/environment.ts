/**
 * What makes benchmark runs comparable, gathered the same way in Node and in browsers: the adapter (features,
 * limits), and the report envelope. The runtime-specific facts come from bench/environment-node.ts (Node: OS,
 * CPU, Node and Dawn versions, git) or the bench page (browser: user agent, the build's git commit).
 */
import { adapterLabel } from '../src/gpu/capabilities.js';
import type { Gpu } from '../src/gpu/gpu.js';
import {
  REPORT_SCHEMA,
  REPORT_VERSION,
  commonTiming,
  type AdapterInfo,
  type BenchReport,
  type EngineInfo,
  type HostInfo,
  type KernelResult,
  type ModelRun,
  type ProjectInfo,
  type RooflineInfo,
  type RuntimeInfo,
} from './report-schema.js';

/** Facts about where the benchmark runs, other than the adapter. */
export interface Environment {
  project: ProjectInfo;
  runtime: RuntimeInfo;
  host: HostInfo;
}

export const ENGINE: EngineInfo = { name: 'blip2-webgpu', peer: false };

export function adapterInfo(gpu: Gpu): AdapterInfo {
  const a = gpu.caps.adapter;
  return {
    label: adapterLabel(a),
    vendor: a.vendor,
    architecture: a.architecture,
    device: a.device,
    description: a.description,
    runtime: a.runtime,
    is_software: gpu.caps.isSoftware,
    features: gpu.adapterOffer.features,
    limits: gpu.adapterOffer.limits,
    subgroup_min_size: gpu.caps.subgroupMinSize || undefined,
    subgroup_max_size: gpu.caps.subgroupMaxSize || undefined,
  };
}

/** A short default label: adapter device (or vendor) and runtime, e.g. 'llvmpipe node', 'swiftshader chromium'. */
export function defaultLabel(adapter: AdapterInfo | null, runtime: RuntimeInfo): string {
  const device = adapter ? (/llvmpipe/i.test(adapter.device) ? 'lavapipe' : adapter.device || adapter.architecture || adapter.vendor || 'adapter') : 'cpu';
  const where = runtime.kind === 'browser' ? (runtime.browser?.split(' ')[0]?.toLowerCase() ?? 'browser') : runtime.kind;
  return `${device} ${where}`;
}

export interface ReportParts {
  suite: 'kernels' | 'model';
  env: Environment;
  adapter: AdapterInfo | null;
  label?: string;
  roofline?: RooflineInfo;
  kernels?: KernelResult[];
  model?: ModelRun[];
  notes?: string[];
}

export function makeReport(p: ReportParts): BenchReport {
  const timings = [...(p.kernels ?? []).filter((k) => k.ms !== null).map((k) => k.timing), ...(p.model ?? []).map((m) => m.timing)];
  const report: BenchReport = {
    schema: REPORT_SCHEMA,
    version: REPORT_VERSION,
    label: p.label ?? defaultLabel(p.adapter, p.env.runtime),
    created: new Date().toISOString(),
    suite: p.suite,
    project: p.env.project,
    engine: ENGINE,
    runtime: p.env.runtime,
    host: p.env.host,
    adapter: p.adapter,
    timing: commonTiming(timings),
  };
  if (p.roofline) report.roofline = p.roofline;
  if (p.kernels) report.kernels = p.kernels;
  if (p.model) report.model = p.model;
  if (p.notes?.length) report.notes = p.notes;
  return report;
}
