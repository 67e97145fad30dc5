/**
 * The benchmark as the browser page runs it (demo/bench.ts): the same kernel cases and model benchmark as Node,
 * on the page's WebGPU adapter, returned as a report in the common schema (bench/report-schema.ts).
 */
import { getGpu } from '../src/gpu/gpu.js';
import { allCases } from './cases/index.js';
import { adapterInfo, makeReport, type Environment } from './environment.js';
import { runKernelCases } from './kernel-runner.js';
import { runModelBench } from './model-run.js';
import type { BenchReport, HostInfo, ProjectInfo } from './report-schema.js';
import { roofline } from './roofline.js';

/** Set by the page's build (demo/build.ts): the git state of the code in the bundle. */
declare const __BLIP2_BUILD__: ProjectInfo | undefined;

export interface PageRunOptions {
  suite: 'kernels' | 'model';
  label?: string;
  // kernels
  filter?: string;
  timeMs?: number;
  peakGflops?: number;
  peakGbps?: number;
  /** The CPU clock, for software adapters' compute peak (a page cannot read it; the Node driver passes it). */
  cpuGhz?: number;
  // model
  model?: string;
  /** Name recorded for the model (default: the URL's last component). */
  modelName?: string;
  dtype?: 'f16' | 'f32';
  /** Quantized weights (docs/quantization.md). */
  quantize?: 'q8' | 'q4';
  tokens?: number;
  runs?: number;
  image?: string;
  prompt?: string;
  randomWeights?: boolean;
}

export type ProgressEvent = { message: string; fraction?: number };

function buildInfo(): ProjectInfo {
  return typeof __BLIP2_BUILD__ !== 'undefined' ? __BLIP2_BUILD__ : { name: 'blip2-webgpu', version: 'unknown', commit: null, commit_date: null };
}

/** 'Chrome 156.0.7500.0' (or Firefox, Safari, Edge) from the user agent. */
export function browserName(ua: string): string {
  const edge = /Edg\/([\d.]+)/.exec(ua);
  if (edge) return `Edge ${edge[1]}`;
  const chrome = /(HeadlessChrome|Chromium|Chrome)\/([\d.]+)/.exec(ua);
  if (chrome) return `${chrome[1] === 'HeadlessChrome' ? 'Chrome (headless)' : chrome[1]} ${chrome[2]}`;
  const firefox = /Firefox\/([\d.]+)/.exec(ua);
  if (firefox) return `Firefox ${firefox[1]}`;
  const safari = /Version\/([\d.]+).*Safari/.exec(ua);
  if (safari) return `Safari ${safari[1]}`;
  return 'unknown browser';
}

export function browserEnvironment(): Environment {
  const nav = navigator as Navigator & { deviceMemory?: number; userAgentData?: { platform?: string } };
  const ua = nav.userAgent;
  const host: HostInfo = {
    os: nav.userAgentData?.platform || /\(([^)]*)\)/.exec(ua)?.[1] || undefined,
    cpu_cores: nav.hardwareConcurrency || undefined,
    ...(nav.deviceMemory ? { memory_bytes: nav.deviceMemory * 2 ** 30 } : {}),
    source: 'self',
  };
  return { project: buildInfo(), runtime: { kind: 'browser', user_agent: ua, browser: browserName(ua) }, host };
}

export async function runInPage(o: PageRunOptions, progress: (e: ProgressEvent) => void = () => {}): Promise<BenchReport> {
  const gpu = await getGpu();
  const env = browserEnvironment();
  const adapter = adapterInfo(gpu);
  if (o.suite === 'kernels') {
    const roof = roofline(gpu.caps, { peakGflops: o.peakGflops, peakGbps: o.peakGbps }, { cores: env.host.cpu_cores ?? 1, ghz: o.cpuGhz ?? 0 });
    progress({ message: `roofline: ${roof.gflops.toFixed(0)} GFLOP/s, ${roof.gbps.toFixed(1)} GB/s (${roof.source})` });
    const kernels = await runKernelCases(gpu, allCases(), {
      timeMs: o.timeMs ?? 1000,
      filter: o.filter ? new RegExp(o.filter, 'i') : undefined,
      roofline: roof,
      onProgress: (e) => {
        const r = e.result;
        const what = r ? (r.error ? `error: ${r.error}` : `${r.ms!.toPrecision(4)} ms`) : 'running';
        progress({ message: `[${e.index + 1}/${e.count}] ${e.name}: ${what}`, fraction: (e.index + (r ? 1 : 0)) / e.count });
      },
    });
    return makeReport({ suite: 'kernels', env, adapter, label: o.label, roofline: roof, kernels });
  }
  if (!o.model) throw new Error('the model benchmark needs a model folder URL');
  if (!o.image) throw new Error('the model benchmark needs an image URL');
  const run = await runModelBench({
    gpu,
    model: o.model,
    name: o.modelName,
    dtype: o.dtype ?? 'f16',
    quantize: o.quantize,
    image: new URL(o.image, location.href).href,
    imageName: o.image.split('/').pop(),
    prompt: o.prompt ?? '',
    tokens: o.tokens ?? 20,
    runs: o.runs ?? 2,
    randomWeights: o.randomWeights,
    onProgress: (message) => progress({ message }),
  });
  return makeReport({ suite: 'model', env, adapter, label: o.label, model: [run] });
}

