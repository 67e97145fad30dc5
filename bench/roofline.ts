import type { Capabilities } from '../src/gpu/capabilities.js';

/**
 * Peak compute and bandwidth of the adapter, the ceilings each benchmark result is compared with.
 * Sources of the GPU presets are listed in docs/benchmarks.md.
 */
export interface Roofline {
  /** FP32 (non-tensor-core) peak, GFLOP/s: our kernels multiply in f32. */
  gflops: number;
  /** FP16 (non-tensor-core) peak, GFLOP/s, where known. */
  gflops_f16?: number;
  /** Memory bandwidth, GB/s (1e9 bytes per second). */
  gbps: number;
  source: string;
}

interface GpuPreset {
  match: RegExp;
  name: string;
  gflops: number;
  gflops_f16: number;
  gbps: number;
}

// Datasheet figures (NVIDIA H100 and H200 product briefs / Hopper whitepaper), without tensor cores.
// More specific names come first: 'H100 PCIe' must not fall through to the SXM entry.
const GPU_PRESETS: GpuPreset[] = [
  { match: /h100.*(pcie)/i, name: 'NVIDIA H100 PCIe', gflops: 51_200, gflops_f16: 102_400, gbps: 2_000 },
  { match: /h100.*nvl/i, name: 'NVIDIA H100 NVL', gflops: 60_000, gflops_f16: 120_000, gbps: 3_900 },
  { match: /h100/i, name: 'NVIDIA H100 SXM5', gflops: 66_900, gflops_f16: 133_800, gbps: 3_350 },
  { match: /h200.*nvl/i, name: 'NVIDIA H200 NVL', gflops: 60_000, gflops_f16: 120_000, gbps: 4_800 },
  { match: /h200/i, name: 'NVIDIA H200 SXM', gflops: 66_900, gflops_f16: 133_800, gbps: 4_800 },
];

/** Host memory bandwidth, measured: the best of a few 64 MiB copies, bytes read + written (Node and browsers). */
export function measureHostCopyGbps(): number {
  const n = 64 * 1024 * 1024;
  const src = new Uint8Array(n).fill(1);
  const dst = new Uint8Array(n);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n) / (best * 1e6);
}

/** What the roofline needs to know of the host CPU (software adapters run on it). */
export interface HostCpu {
  cores: number;
  /** Clock in GHz; 0 when unknown (browsers cannot tell). */
  ghz: number;
}

/**
 * A CPU rasteriser's ceiling: cores x f32 SIMD lanes x 2 FMA pipes x 2 flops x clock. lavapipe
 * (llvmpipe) reports its vector width in the device name ('256-bits'); SwiftShader works 4 lanes wide.
 * Without a known clock the compute peak is 0 (unknown).
 */
function cpuPreset(kind: 'llvmpipe' | 'swiftshader', lanes: number, cpu: HostCpu): Roofline {
  const gflops = cpu.cores * lanes * 2 * 2 * cpu.ghz;
  const gbps = measureHostCopyGbps();
  return {
    gflops,
    gbps,
    source:
      `preset ${kind} on this host: ${cpu.cores} cores x ${lanes} f32 lanes x 2 FMA pipes x 2 flops x ${cpu.ghz > 0 ? `${cpu.ghz.toFixed(2)} GHz` : 'unknown clock (0)'}; ` +
      `bandwidth = host memcpy measured now (read + written)`,
  };
}

export interface RooflineFlags {
  peakGflops?: number;
  peakGbps?: number;
}

/** The roofline for `caps`: flags first, then a preset for the adapter, else unknown (0). */
export function roofline(caps: Capabilities, flags: RooflineFlags, cpu: HostCpu): Roofline {
  const a = caps.adapter;
  const text = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`;
  let preset: Roofline | null = null;
  const gpu = GPU_PRESETS.find((p) => p.match.test(text));
  if (gpu) {
    preset = { gflops: gpu.gflops, gflops_f16: gpu.gflops_f16, gbps: gpu.gbps, source: `preset ${gpu.name} (datasheet, no tensor cores)` };
  } else if (/llvmpipe|lavapipe/i.test(text)) {
    const bits = /(\d+)[- ]bits/i.exec(text);
    preset = cpuPreset('llvmpipe', bits ? Number(bits[1]) / 32 : 8, cpu);
  } else if (/swiftshader/i.test(text)) {
    preset = cpuPreset('swiftshader', 4, cpu);
  }
  if (flags.peakGflops !== undefined || flags.peakGbps !== undefined) {
    return {
      gflops: flags.peakGflops ?? preset?.gflops ?? 0,
      gbps: flags.peakGbps ?? preset?.gbps ?? 0,
      source: `--peak-gflops/--peak-gbps${preset ? ` (rest: ${preset.source})` : ''}`,
    };
  }
  return preset ?? { gflops: 0, gbps: 0, source: 'unknown adapter: pass --peak-gflops and --peak-gbps' };
}

/** Fraction of the roofline reached: the roofline's time for the work divided by the measured time. */
export function rooflineFraction(r: Roofline, ms: number, flops?: number, bytes?: number): number | undefined {
  const bounds: number[] = [];
  if (flops && r.gflops > 0) bounds.push(flops / (r.gflops * 1e6));
  if (bytes && r.gbps > 0) bounds.push(bytes / (r.gbps * 1e6));
  if (!bounds.length || !(ms > 0)) return undefined;
  return Math.max(...bounds) / ms;
}
