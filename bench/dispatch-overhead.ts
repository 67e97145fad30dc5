/**
 * What a compute dispatch costs on its own: 500 dispatches of a one-line kernel (each workgroup adds 1 to its
 * words) in one command buffer, one pass per dispatch (as the engine records them) or all in one pass, timed to
 * the device's completion. The per-dispatch figure is the floor under every dispatch of a decode step (a full-size
 * step takes 164-228 of them on lavapipe: docs/quantization.md).
 *
 *   npx tsx bench/dispatch-overhead.ts [--rounds 7]
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { median, minimum } from './interleaved.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a positive integer, got '${args.rounds}'`);
const DISPATCHES = 500;
const WG = 64;

const gpu = await Gpu.create();
const dev = gpu.device;
const buf = dev.createBuffer({ size: 320 * WG * 4, usage: GPUBufferUsage.STORAGE });
const pipeline = dev.createComputePipeline({
  layout: 'auto',
  compute: {
    module: dev.createShaderModule({
      code: `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) g: vec3<u32>) { o[g.x] = o[g.x] + 1.0; }`,
    }),
    entryPoint: 'main',
  },
});
const bindGroup = dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });

async function perDispatchUs(groups: number, passPerDispatch: boolean): Promise<number> {
  const enc = dev.createCommandEncoder();
  let pass = enc.beginComputePass();
  for (let i = 0; i < DISPATCHES; i++) {
    if (passPerDispatch && i > 0) {
      pass.end();
      pass = enc.beginComputePass();
    }
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups);
  }
  pass.end();
  const t0 = performance.now();
  dev.queue.submit([enc.finish()]);
  await gpu.sync();
  return ((performance.now() - t0) / DISPATCHES) * 1000;
}

console.log(`${gpu.caps.adapter.description || gpu.caps.adapter.vendor}; microseconds per dispatch, ${DISPATCHES} dispatches per run, ${rounds} rounds`);
console.log('workgroups of 64 | passes        |     min |  median');
for (const groups of [1, 20, 80, 320]) {
  for (const perPass of [true, false]) {
    await perDispatchUs(groups, perPass); // compiles and warms up
    const t: number[] = [];
    for (let r = 0; r < rounds; r++) t.push(await perDispatchUs(groups, perPass));
    console.log(`${String(groups).padStart(16)} | ${(perPass ? 'one each' : 'one for all').padEnd(13)} | ${minimum(t).toFixed(1).padStart(7)} | ${median(t).toFixed(1).padStart(7)}`);
  }
}
buf.destroy();
gpu.destroy();
