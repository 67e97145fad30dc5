import type { Gpu } from '../gpu/gpu.js';

/**
 * A 1-D launch of `n` invocations in workgroups of `wgSize`, folded into two dimensions when it needs
 * more than maxComputeWorkgroupsPerDimension workgroups. Shaders recover the index as
 * `gid.x + gid.y * rowStride`.
 */
export function grid1d(gpu: Gpu, n: number, wgSize: number): { workgroups: [number, number]; rowStride: number } {
  const groups = Math.max(1, Math.ceil(n / wgSize));
  const maxDim = gpu.caps.maxComputeWorkgroupsPerDimension;
  if (groups <= maxDim) return { workgroups: [groups, 1], rowStride: groups * wgSize };
  const y = Math.ceil(groups / maxDim);
  const x = Math.ceil(groups / y);
  return { workgroups: [x, y], rowStride: x * wgSize };
}
