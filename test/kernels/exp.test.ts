/**
 * exp_precise (wgsl/exp_common.wgsl), the exp of the attention kernels and GELU: tighter than lavapipe's
 * builtin where softmax weights live, exactly 0 far below (masked scores), subnormals on the way down.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

async function expOnGpu(xs: Float32Array<ArrayBuffer>): Promise<Float32Array> {
  const dev = gpu.device;
  const lib = readFileSync(fileURLToPath(new URL('../../wgsl/exp_common.wgsl', import.meta.url)), 'utf8');
  const code = `${lib}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < arrayLength(&x)) { y[g.x] = exp_precise(x[g.x]); }
}`;
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code }), entryPoint: 'main' } });
  const xb = dev.createBuffer({ size: xs.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const yb = dev.createBuffer({ size: xs.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const rb = dev.createBuffer({ size: xs.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  dev.queue.writeBuffer(xb, 0, xs);
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: xb } }, { binding: 1, resource: { buffer: yb } }] }));
  pass.dispatchWorkgroups(Math.ceil(xs.length / 64));
  pass.end();
  enc.copyBufferToBuffer(yb, 0, rb, 0, xs.byteLength);
  dev.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  for (const b of [xb, yb, rb]) b.destroy();
  return out;
}

describe('exp_precise', () => {
  it('is within 1e-7 relative for |x| <= 1, within 2e-6 down to -20, 0 below -104', async () => {
    const near = Float32Array.from({ length: 4001 }, (_, i) => -1 + i / 2000);
    const far = Float32Array.from({ length: 4001 }, (_, i) => -20 + i / 200);
    const [yn, yf] = [await expOnGpu(near), await expOnGpu(far)];
    const rel = (xs: Float32Array, ys: Float32Array) => Math.max(...Array.from(xs, (x, i) => Math.abs(ys[i]! / Math.exp(x) - 1)));
    expect(rel(near, yn)).toBeLessThan(1e-7);
    expect(rel(far, yf)).toBeLessThan(2e-6);
    const edges = await expOnGpu(Float32Array.from([0, -104.5, -1e30, -Infinity, -3.4e38, -90]));
    expect(Array.from(edges.subarray(0, 5))).toEqual([1, 0, 0, 0, 0]);
    expect(edges[5]! / Math.exp(-90)).toBeCloseTo(1, 4); // a subnormal (19 significant bits left)
  });
});
