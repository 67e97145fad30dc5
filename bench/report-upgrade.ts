/**
 * Reads benchmark reports of any version into the current schema (bench/report-schema.ts). Besides version 1 it
 * knows the three formats written before the schema existed: bench:kernels' `{ adapter, roofline, results }`,
 * bench:model's flat `{ adapter, dtype, load_s, vision_ms, ... }` and hf_reference.py's `{ transformers, torch,
 * device, runs }`. Every number is carried over as it was; only names and units of fields change, and work
 * counts (flops, bytes) the old kernel reports left out are derived from their own rates (gflops x ms).
 *
 *   npx tsx bench/report-upgrade.ts FILE... [--in-place]    # prints (or rewrites) them in the current schema
 */
import {
  REPORT_SCHEMA,
  REPORT_VERSION,
  commonTiming,
  validateReport,
  type AdapterInfo,
  type BenchReport,
  type KernelResult,
  type ModelRun,
  type TimingMethod,
} from './report-schema.js';

type Json = Record<string, unknown>;

/** Where an old report came from, for the fields it did not record. */
export interface LegacyContext {
  /** Label for the report (e.g. the file name without .json). */
  label: string;
  /** When it was made (e.g. the date of the commit that stored it), ISO 8601. */
  created?: string;
  /** Said in `converted_from`, e.g. 'docs/measurements/x.json, stored in commit abc'. */
  origin?: string;
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

const LIMIT_KEYS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
];

/** The old reports' adapter: an AdapterDescription with a label and (some of) the engine's Capabilities. */
function legacyAdapter(a: Json): AdapterInfo {
  const d = isObject(a.adapter) ? a.adapter : a;
  const features = [a.f16 === true ? 'shader-f16' : '', a.subgroups === true ? 'subgroups' : '', a.timestampQuery === true ? 'timestamp-query' : ''].filter(Boolean);
  const limits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) if (num(a[k]) !== undefined) limits[k] = a[k] as number;
  const text = `${str(d.vendor)} ${str(d.architecture)} ${str(d.device)} ${str(d.description)}`;
  return {
    label: str(a.label),
    vendor: str(d.vendor),
    architecture: str(d.architecture),
    device: str(d.device),
    description: str(d.description),
    runtime: str(d.runtime),
    is_software: a.isSoftware === true || /llvmpipe|lavapipe|swiftshader|software/i.test(text),
    features,
    limits,
    ...(num(a.subgroupMinSize) ? { subgroup_min_size: a.subgroupMinSize as number } : {}),
    ...(num(a.subgroupMaxSize) ? { subgroup_max_size: a.subgroupMaxSize as number } : {}),
  };
}

function envelope(ctx: LegacyContext, suite: 'kernels' | 'model', what: string): Omit<BenchReport, 'engine' | 'runtime' | 'adapter' | 'timing'> {
  return {
    schema: REPORT_SCHEMA,
    version: REPORT_VERSION,
    label: ctx.label,
    created: ctx.created ?? new Date(0).toISOString(),
    suite,
    project: { name: 'blip2-webgpu', version: '0.1.0', commit: null, commit_date: null },
    host: {},
    converted_from: `${what}${ctx.origin ? `: ${ctx.origin}` : ''}`,
  };
}

function legacyTiming(t: unknown): TimingMethod | undefined {
  if (t === 'wall') return 'wall-clock';
  if (t === 'gpu-timestamps') return 'gpu-timestamps';
  return undefined;
}

function fromLegacyKernels(j: Json, ctx: LegacyContext): BenchReport {
  const adapter = legacyAdapter(j.adapter as Json);
  const kernels: KernelResult[] = (j.results as Json[]).map((r) => {
    const out: KernelResult = { kernel: str(r.kernel), shape: str(r.shape), dtype: str(r.dtype), ms: num(r.ms) ?? null };
    if (num(r.wall_ms) !== undefined) out.wall_ms = r.wall_ms as number;
    const timing = legacyTiming(r.timing);
    if (timing) out.timing = timing;
    // The old format kept the rates, not the work: flops = GFLOP/s x ms x 1e6 (exact up to rounding).
    if (out.ms !== null && num(r.gflops) !== undefined) out.flops = Math.round((r.gflops as number) * out.ms * 1e6);
    if (out.ms !== null && num(r.gbps) !== undefined) out.bytes = Math.round((r.gbps as number) * out.ms * 1e6);
    for (const k of ['gflops', 'gbps', 'roofline_fraction'] as const) if (num(r[k]) !== undefined) out[k] = r[k] as number;
    if (out.kernel.startsWith('peer-tfjs')) out.peer = 'tensorflow.js';
    if (typeof r.error === 'string') out.error = r.error;
    return out;
  });
  const roof = j.roofline as Json;
  return {
    ...envelope(ctx, 'kernels', 'bench:kernels report from before the schema'),
    engine: { name: 'blip2-webgpu', peer: false },
    runtime: { kind: adapter.runtime === 'browser' ? 'browser' : 'node' },
    adapter,
    timing: commonTiming(kernels.filter((k) => k.ms !== null).map((k) => k.timing)),
    roofline: { gflops: num(roof.gflops) ?? 0, ...(num(roof.gflops_f16) !== undefined ? { gflops_f16: roof.gflops_f16 as number } : {}), gbps: num(roof.gbps) ?? 0, source: str(roof.source) },
    kernels,
  };
}

function legacyCheckpointName(path: string): string {
  return path.replace(/\/+$/, '').split('/').pop() || path;
}

function fromLegacyModel(j: Json, ctx: LegacyContext): BenchReport {
  const adapter = legacyAdapter(j.adapter as Json);
  const checkpoint = str(j.checkpoint);
  const run: ModelRun = {
    model: { name: legacyCheckpointName(checkpoint), source: checkpoint, ...(/random/.test(checkpoint) ? { random_weights: true } : {}) },
    variant: { dtype: str(j.dtype) },
    load_s: num(j.load_s) ?? null,
    memory: {},
    stages: {},
    timing: 'wall-clock',
  };
  const memory: [string, keyof ModelRun['memory']][] = [
    ['gpu_bytes', 'weights_bytes'],
    ['gpu_peak_bytes', 'peak_device_bytes'],
    ['peak_host_bytes', 'peak_host_bytes'],
    ['peak_host_bytes_during_load', 'peak_host_bytes_during_load'],
  ];
  for (const [from, to] of memory) if (num(j[from]) !== undefined) run.memory[to] = j[from] as number;
  for (const k of ['vision_ms', 'qformer_ms', 'prefill_ms', 'decode_ms_per_token']) if (num(j[k]) !== undefined) run.stages[k] = j[k] as number;
  for (const k of ['prefill_tokens', 'decode_tokens', 'runs'] as const) if (num(j[k]) !== undefined) run[k] = j[k] as number;
  const notes: string[] = [];
  if (typeof j.note === 'string') notes.push(j.note);
  const ref = j.reference;
  if (isObject(ref)) {
    // Numbers the old bench:model carried from elsewhere as its comparison (not measured in this run).
    run.metrics = {};
    if (num(ref.vision_ms) !== undefined) run.metrics.reference_vision_ms = ref.vision_ms as number;
    if (num(ref.decode_ms_per_token) !== undefined) run.metrics.reference_decode_ms_per_token = ref.decode_ms_per_token as number;
    run.metrics.reference_source = str(ref.source);
    notes.push(`metrics.reference_*: ${str(ref.source)} (carried by the old bench:model as its comparison, not measured in this run)`);
  }
  return {
    ...envelope(ctx, 'model', 'bench:model report from before the schema'),
    engine: { name: 'blip2-webgpu', peer: false },
    runtime: { kind: adapter.runtime === 'browser' ? 'browser' : 'node' },
    adapter,
    timing: 'wall-clock',
    model: [run],
    ...(notes.length ? { notes } : {}),
  };
}

function fromLegacyHf(j: Json, ctx: LegacyContext): BenchReport {
  const device = str(j.device);
  const cuda = /nvidia|cuda|gpu/i.test(device) || /\+cu/.test(str(j.torch));
  const runs: ModelRun[] = (j.runs as Json[]).map((r) => {
    const dtype = str(r.dtype).replace('torch.float16', 'f16').replace('torch.float32', 'f32').replace('torch.bfloat16', 'bf16');
    const run: ModelRun = {
      model: { name: 'blip2-random', random_weights: true },
      variant: { dtype },
      load_s: num(r.load_s) ?? null,
      memory: {},
      stages: {},
      timing: cuda ? 'cuda-events' : 'wall-clock',
    };
    for (const k of ['vision_ms', 'qformer_ms', 'prefill_ms', 'decode_ms_per_token']) if (num(r[k]) !== undefined) run.stages[k] = r[k] as number;
    if (num(r.prefill_tokens) !== undefined) run.prefill_tokens = r.prefill_tokens as number;
    if (typeof r.error === 'string') run.error = r.error;
    return run;
  });
  const notes = ['decode_ms_per_token: wall clock over a greedy loop that reads each token back; the other stages: CUDA-event medians'];
  if (isObject(j.rgba_convert)) notes.push(`rgba_convert: ${JSON.stringify(j.rgba_convert)}`);
  return {
    ...envelope(ctx, 'model', 'hf_reference.py report from before the schema'),
    engine: { name: 'transformers', version: str(j.transformers), peer: true, backend: `torch ${str(j.torch)}${cuda ? ' (CUDA)' : ' (CPU)'}` },
    runtime: { kind: 'python', transformers: str(j.transformers), torch: str(j.torch) },
    adapter: {
      label: `${device} (${cuda ? 'cuda' : 'cpu'})`,
      vendor: /nvidia/i.test(device) ? 'nvidia' : '',
      architecture: '',
      device,
      description: device,
      runtime: cuda ? 'cuda' : 'cpu',
      is_software: !cuda,
      features: [],
      limits: {},
    },
    timing: cuda ? 'mixed' : 'wall-clock',
    model: runs,
    notes,
  };
}

/** What kind of report `j` is: 'v1', one of the old formats, or null. */
export function reportKind(j: unknown): 'v1' | 'legacy-kernels' | 'legacy-model' | 'legacy-hf' | null {
  if (!isObject(j)) return null;
  if (j.schema === REPORT_SCHEMA) return 'v1';
  if (isObject(j.adapter) && Array.isArray(j.results) && isObject(j.roofline)) return 'legacy-kernels';
  if (isObject(j.adapter) && typeof j.dtype === 'string' && 'vision_ms' in j) return 'legacy-model';
  if (typeof j.transformers === 'string' && Array.isArray(j.runs)) return 'legacy-hf';
  return null;
}

/** Any known report as a current, validated one. */
export function upgradeReport(j: unknown, ctx: LegacyContext): BenchReport {
  switch (reportKind(j)) {
    case 'v1':
      return validateReport(j, ctx.label);
    case 'legacy-kernels':
      return validateReport(fromLegacyKernels(j as Json, ctx), ctx.label);
    case 'legacy-model':
      return validateReport(fromLegacyModel(j as Json, ctx), ctx.label);
    case 'legacy-hf':
      return validateReport(fromLegacyHf(j as Json, ctx), ctx.label);
    default:
      throw new Error(`${ctx.label}: not a benchmark report (neither schema "${REPORT_SCHEMA}" nor one of the older bench:kernels, bench:model or hf_reference.py formats)`);
  }
}
