/**
 * The benchmark report: one JSON format for every benchmark (kernels, model, end to end), every runtime (Node +
 * Dawn, a browser, the transformers peer in Python) and every machine, so that `npm run bench:report` can put any
 * number of them side by side. Documented field by field in docs/benchmarks.md ("Report format").
 *
 * Versioned: `schema` names the format, `version` its revision. A change that only adds optional fields keeps the
 * version; one that renames, removes or changes the meaning of a field bumps it, and `upgradeReport`
 * (bench/report-upgrade.ts) learns to read the older one.
 */

export const REPORT_SCHEMA = 'blip2-webgpu/bench-report';
export const REPORT_VERSION = 1;

/** How times were taken. GPU timestamps isolate device time; wall clock includes the host's recording and completion. */
export type TimingMethod = 'gpu-timestamps' | 'wall-clock' | 'cuda-events' | 'mixed';

export interface ProjectInfo {
  name: string;
  version: string;
  /** git commit of the code that ran (null when unknown, e.g. a build outside a checkout). */
  commit: string | null;
  /** Committer date of that commit, ISO 8601. */
  commit_date: string | null;
  /** The working tree had uncommitted changes. */
  dirty?: boolean;
}

export interface EngineInfo {
  /** 'blip2-webgpu', or the peer's name ('transformers', 'tensorflow.js'). */
  name: string;
  version?: string;
  /** A peer: somebody else's implementation measured for comparison. */
  peer: boolean;
  /** e.g. 'torch 2.11.0+cu130 (CUDA)' for transformers. */
  backend?: string;
}

export interface RuntimeInfo {
  kind: 'node' | 'browser' | 'python';
  /** Node's version (kind node). */
  node?: string;
  /** Version of the `webgpu` npm package (Dawn for Node). */
  dawn?: string;
  /** navigator.userAgent (kind browser). */
  user_agent?: string;
  /** e.g. 'Chromium 156.0.7500.0' when the browser tells (userAgentData, or the UA string). */
  browser?: string;
  /** Extra facts: command-line flags of the browser, python/torch/transformers versions. */
  [extra: string]: string | undefined;
}

export interface HostInfo {
  /** e.g. 'Linux 6.1.0-31-amd64', or what the browser's UA says. */
  os?: string;
  arch?: string;
  cpu_model?: string;
  /** Logical cores (navigator.hardwareConcurrency in browsers). */
  cpu_cores?: number;
  /** Highest clock seen, GHz (Node: os.cpus() or /proc/cpuinfo). */
  cpu_ghz?: number;
  /** 'avx512', 'avx2', ... where the runtime can tell. */
  cpu_simd?: string;
  memory_bytes?: number;
  /** os.loadavg() (1, 5, 15 min) when the run started: a loaded machine gives slower, noisier numbers. */
  load_average?: number[];
  /** Who filled the host fields in a browser run: the page itself, or the Node driver on the same machine. */
  source?: 'self' | 'driver';
}

export interface AdapterInfo {
  /** One line, e.g. 'mesa / software / llvmpipe-... (node-dawn)'. */
  label: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** 'node-dawn', 'browser', 'cuda', 'cpu'. */
  runtime: string;
  /** Software rasteriser (lavapipe, SwiftShader, WARP) or a CPU. */
  is_software: boolean;
  /** Adapter features (WebGPU feature names). */
  features: string[];
  /** Adapter limits (WebGPU limit names), as the adapter reports them. */
  limits: Record<string, number>;
  subgroup_min_size?: number;
  subgroup_max_size?: number;
}

/** Peak compute and bandwidth the results are compared with (bench/roofline.ts). */
export interface RooflineInfo {
  /** FP32 (no tensor cores) GFLOP/s; 0 = unknown. */
  gflops: number;
  gflops_f16?: number;
  /** GB/s (1e9 bytes/s); 0 = unknown. */
  gbps: number;
  source: string;
}

export interface KernelResult {
  kernel: string;
  shape: string;
  dtype: string;
  /** ms per call: GPU time (timestamps) where `timing` says so, else wall clock; null when the case failed. */
  ms: number | null;
  /** Wall-clock ms per call, completion included (what a caller waits). */
  wall_ms?: number;
  timing?: TimingMethod;
  /** Work per call, for GFLOP/s, GB/s and the roofline's arithmetic intensity (flops / bytes). */
  flops?: number;
  bytes?: number;
  gflops?: number;
  gbps?: number;
  /** Time the roofline allows / measured time. */
  roofline_fraction?: number;
  /** Set for peers' kernels (e.g. 'tensorflow.js'). */
  peer?: string;
  error?: string;
}

export interface ModelDims {
  image_size: number;
  vision_hidden: number;
  vision_layers: number;
  vision_heads: number;
  qformer_hidden: number;
  qformer_layers: number;
  num_query_tokens: number;
  text_hidden: number;
  text_layers: number;
  text_heads: number;
  vocab_size: number;
}

/** What was run: dtype of the weights, quantisation, KV cache; free-form additions (strings, numbers, flags). */
export interface ModelVariant {
  dtype: string;
  quantize?: string | null;
  kv_cache?: string;
  [extra: string]: string | number | boolean | null | undefined;
}

/** One caption from a cold start: the first thing done after loading, so pipeline compilation is included. */
export interface EndToEnd {
  /** The image captioned (file name or URL) and the prompt ('' = caption). */
  image?: string;
  prompt?: string;
  /** Image decode + resize + normalise + tokenizer. */
  processor_ms: number;
  vision_ms: number;
  /** Q-Former + language projection. */
  qformer_ms: number;
  /** Merging the image embeddings, the prompt's prefill and reading back the first token. */
  prefill_ms: number;
  /** Time to first token: processor + vision + Q-Former + prefill. */
  ttft_ms: number;
  /** Tokens generated after the first, and their total time. */
  decode_tokens: number;
  decode_ms: number;
  decode_tokens_per_s: number;
  total_ms: number;
  /** The generated ids (greedy), first included. */
  token_ids?: number[];
  text?: string;
}

export interface ModelRun {
  model: {
    /** Folder name or hub id. */
    name: string;
    /** Where it was loaded from (path or URL). */
    source?: string;
    random_weights?: boolean;
    dims?: ModelDims;
    parameters?: number;
  };
  variant: ModelVariant;
  /** Seconds from nothing to a usable model (weights and, where measured, processor). */
  load_s: number | null;
  memory: {
    /** Device bytes live after loading (the weights). */
    weights_bytes?: number;
    /** Most device bytes live at once during the whole run. */
    peak_device_bytes?: number;
    /** Peak RSS of the process (Node); on software adapters it includes the "device" memory. */
    peak_host_bytes?: number;
    peak_host_bytes_during_load?: number;
  };
  /** Warm medians (after the cold run) over `runs` runs, ms. Standard keys below; others may be added. */
  stages: {
    processor_ms?: number;
    vision_ms?: number;
    qformer_ms?: number;
    prefill_ms?: number;
    decode_ms_per_token?: number;
    [extra: string]: number | undefined;
  };
  prefill_tokens?: number;
  decode_tokens?: number;
  runs?: number;
  timing?: TimingMethod;
  e2e?: EndToEnd;
  /** Free-form numbers (dispatches per token, host ms per token, ...). */
  metrics?: Record<string, number | string>;
  error?: string;
}

export interface BenchReport {
  schema: typeof REPORT_SCHEMA;
  version: typeof REPORT_VERSION;
  /** Short name for comparisons (`--label`). */
  label: string;
  /** When the run finished, ISO 8601. */
  created: string;
  suite: 'kernels' | 'model';
  project: ProjectInfo;
  engine: EngineInfo;
  runtime: RuntimeInfo;
  host: HostInfo;
  /** null for runs on a CPU without WebGPU (the transformers peer on PyTorch CPU gives runtime 'cpu' instead). */
  adapter: AdapterInfo | null;
  timing: TimingMethod;
  roofline?: RooflineInfo;
  kernels?: KernelResult[];
  model?: ModelRun[];
  notes?: string[];
  /** Set on reports converted from an older format: what it was. */
  converted_from?: string;
}

// ------------------------------------------------------------------ validation

/** A report that does not follow the schema: says which field and why. */
export class ReportFormatError extends Error {
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'ReportFormatError';
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function need(cond: boolean, where: string, message: string): asserts cond {
  if (!cond) throw new ReportFormatError(where, message);
}

function optNumber(o: Json, key: string, where: string, nullable = false): void {
  const v = o[key];
  if (v === undefined || (nullable && v === null)) return;
  need(typeof v === 'number' && Number.isFinite(v), `${where}.${key}`, `must be a finite number${nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
}

function optString(o: Json, key: string, where: string, nullable = false): void {
  const v = o[key];
  if (v === undefined || (nullable && v === null)) return;
  need(typeof v === 'string', `${where}.${key}`, `must be a string, got ${JSON.stringify(v)}`);
}

function checkKernel(r: unknown, where: string): void {
  need(isObject(r), where, 'must be an object');
  for (const k of ['kernel', 'shape', 'dtype']) need(typeof r[k] === 'string' && (r[k] as string).length > 0, `${where}.${k}`, 'must be a non-empty string');
  need(r.ms === null || (typeof r.ms === 'number' && r.ms > 0 && Number.isFinite(r.ms)), `${where}.ms`, 'must be a positive number or null');
  need(r.ms !== null || typeof r.error === 'string', `${where}.error`, 'a failed case (ms null) says why');
  for (const k of ['wall_ms', 'flops', 'bytes', 'gflops', 'gbps', 'roofline_fraction']) optNumber(r, k, where);
  for (const k of ['timing', 'peer', 'error']) optString(r, k, where);
}

function checkModelRun(r: unknown, where: string): void {
  need(isObject(r), where, 'must be an object');
  need(isObject(r.model) && typeof r.model.name === 'string', `${where}.model.name`, 'must be a string');
  need(isObject(r.variant) && typeof r.variant.dtype === 'string', `${where}.variant.dtype`, 'must be a string');
  optNumber(r, 'load_s', where, true);
  need(isObject(r.memory), `${where}.memory`, 'must be an object');
  for (const k of Object.keys(r.memory)) optNumber(r.memory, k, `${where}.memory`);
  need(isObject(r.stages), `${where}.stages`, 'must be an object');
  for (const k of Object.keys(r.stages)) optNumber(r.stages, k, `${where}.stages`);
  if (r.e2e !== undefined) {
    need(isObject(r.e2e), `${where}.e2e`, 'must be an object');
    for (const k of ['processor_ms', 'vision_ms', 'qformer_ms', 'prefill_ms', 'ttft_ms', 'decode_tokens', 'decode_ms', 'decode_tokens_per_s', 'total_ms']) {
      need(typeof r.e2e[k] === 'number' && Number.isFinite(r.e2e[k]), `${where}.e2e.${k}`, 'must be a finite number');
    }
  }
  if (r.metrics !== undefined) need(isObject(r.metrics), `${where}.metrics`, 'must be an object');
  optString(r, 'error', where);
}

/** Checks `value` against the current schema and returns it typed; throws ReportFormatError naming the first bad field. */
export function validateReport(value: unknown, where = 'report'): BenchReport {
  need(isObject(value), where, 'must be a JSON object');
  need(value.schema === REPORT_SCHEMA, `${where}.schema`, `must be "${REPORT_SCHEMA}" (got ${JSON.stringify(value.schema)})`);
  need(value.version === REPORT_VERSION, `${where}.version`, `this code reads version ${REPORT_VERSION}, got ${JSON.stringify(value.version)}`);
  need(typeof value.label === 'string' && value.label.length > 0, `${where}.label`, 'must be a non-empty string');
  need(typeof value.created === 'string' && !Number.isNaN(Date.parse(value.created)), `${where}.created`, 'must be an ISO date');
  need(value.suite === 'kernels' || value.suite === 'model', `${where}.suite`, 'must be "kernels" or "model"');
  need(isObject(value.project) && typeof value.project.name === 'string', `${where}.project`, 'must name the project');
  optString(value.project, 'commit', `${where}.project`, true);
  need(isObject(value.engine) && typeof value.engine.name === 'string' && typeof value.engine.peer === 'boolean', `${where}.engine`, 'needs name and peer');
  need(isObject(value.runtime) && ['node', 'browser', 'python'].includes(value.runtime.kind as string), `${where}.runtime.kind`, 'must be node, browser or python');
  need(isObject(value.host), `${where}.host`, 'must be an object');
  if (value.adapter !== null) {
    const a = value.adapter;
    need(isObject(a), `${where}.adapter`, 'must be an object or null');
    for (const k of ['label', 'vendor', 'architecture', 'device', 'description', 'runtime']) need(typeof a[k] === 'string', `${where}.adapter.${k}`, 'must be a string');
    need(Array.isArray(a.features), `${where}.adapter.features`, 'must be an array');
    need(isObject(a.limits), `${where}.adapter.limits`, 'must be an object');
  }
  need(['gpu-timestamps', 'wall-clock', 'cuda-events', 'mixed'].includes(value.timing as string), `${where}.timing`, 'unknown timing method');
  if (value.roofline !== undefined) {
    need(isObject(value.roofline), `${where}.roofline`, 'must be an object');
    optNumber(value.roofline, 'gflops', `${where}.roofline`);
    optNumber(value.roofline, 'gbps', `${where}.roofline`);
  }
  if (value.kernels !== undefined) {
    need(Array.isArray(value.kernels), `${where}.kernels`, 'must be an array');
    value.kernels.forEach((r, i) => checkKernel(r, `${where}.kernels[${i}]`));
  }
  if (value.model !== undefined) {
    need(Array.isArray(value.model), `${where}.model`, 'must be an array');
    value.model.forEach((r, i) => checkModelRun(r, `${where}.model[${i}]`));
  }
  need(value.kernels !== undefined || value.model !== undefined, where, 'has neither kernels nor model results');
  return value as unknown as BenchReport;
}

/** The timing method of a set of results: the one they share, or 'mixed'. */
export function commonTiming(methods: (TimingMethod | undefined)[]): TimingMethod {
  const set = new Set(methods.filter((m): m is TimingMethod => m !== undefined));
  if (set.size === 1) return [...set][0]!;
  return set.size === 0 ? 'wall-clock' : 'mixed';
}
