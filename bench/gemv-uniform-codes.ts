/**
 * Can a q4 decode GEMV read its codes through uniform bindings on llvmpipe? x already comes that way
 * (`A_UNIFORM`: llvmpipe gathers uniform-buffer words without the per-lane branch and bounds check of a storage
 * load). Codes are megabytes and a uniform binding holds 64 KiB, 12 of them a stage, so the weight is bound as
 * windows of RW rows (RW x G x 16 bytes <= 64 KiB) at offsets of the one buffer, with no change of layout:
 *   S1 / U1  one window a dispatch (a workgroup of RW / 2 lanes, 2 rows a lane), codes from a storage (S) or a
 *            uniform (U) binding of the same window: the same dispatches, only the kind of load differs
 *   UW       W uniform windows a dispatch, one a workgroup, picked by a switch on workgroup_id
 *   AU2      gemv_rows' layout today (bench/gemv-layouts.ts): one dispatch, codes from storage, x uniform
 * The kernels are gemv-layouts' AU2 group steps; each call runs COPIES distinct weight copies; wall ms per call,
 * minimum / median of ROUNDS interleaved rounds (docs/quantization.md, "Seventh session").
 *
 *   [ROUNDS=15] [N=8064] [K=2560] [W=8] npx tsx bench/gemv-uniform-codes.ts
 */
import { Gpu } from '../src/gpu/gpu.js';
import { median, minimum, timeInterleaved } from './interleaved.js';
import { Q4_GROUP_DOT_WGSL } from './q4-group-wgsl.js';

const gpu = await Gpu.create();
const dev = gpu.device;
const K = Number(process.env.K ?? 2560), W = Number(process.env.W ?? 8);
const ROUNDS = Number(process.env.ROUNDS ?? 15), COPIES = 8;
if (K % 32) throw new Error(`K must be a multiple of 32, got ${K}`);
const G = K / 32;
const RW = Math.floor(4096 / G / 16) * 16; // rows a 64 KiB window holds, a multiple of a subgroup's 16
if (RW < 16) throw new Error(`K = ${K}: a 64 KiB window holds fewer than 16 rows`);
// N defaults to the largest multiple of RW x W up to 8192.
const N = Number(process.env.N ?? Math.floor(8192 / (RW * W)) * RW * W);
if (N % (RW * W)) throw new Error(`N must be a multiple of ${RW * W} (RW ${RW} x W ${W}), got ${N}`);

const S = GPUBufferUsage.STORAGE, U = GPUBufferUsage.UNIFORM;
const upload = (data: ArrayBufferView<ArrayBuffer>, usage: number) => {
  const b = dev.createBuffer({ size: Math.ceil(data.byteLength / 4) * 4, usage: usage | GPUBufferUsage.COPY_DST });
  dev.queue.writeBuffer(b, 0, data);
  return b;
};
const codes = new Uint32Array(N * G * 4).map((_, i) => (Math.imul(i, 2654435761) >>> 0) & 0x77777777);
const weights = Array.from({ length: COPIES }, () => upload(codes, S | U));
const scales = upload(new Uint16Array(N * G).map((_, i) => 0x3c00 + (i % 7) * 0x100), S);
const x = upload(Float32Array.from({ length: K }, (_, i) => Math.sin(i)), U);
const out = dev.createBuffer({ size: N * 4, usage: S });

const common = `enable subgroups;
const G = ${G}u;
@group(0) @binding(20) var<uniform> xu: array<vec4<f32>, ${K / 4}>;
@group(0) @binding(21) var<storage, read> sc: array<u32>;
@group(0) @binding(22) var<storage, read_write> y: array<f32>;
fn scale(row: u32, g: u32) -> f32 { let i = row * G + g; return unpack2x16float(sc[i >> 1u])[i & 1u]; }
${Q4_GROUP_DOT_WGSL}`;
/** Two rows a lane, r0 and r0 + 1 of the bound rows, codes read as `codes` names them. */
const rowsLoop = (codesVar: string, r0: string, n0: string) => `
  for (var g = 0u; g < G; g++) {
    let xv = xu[g * 8u + lane];
    for (var r = 0u; r < 2u; r++) { acc[r] = fma(group_dot(${codesVar}[(${r0} + r) * G + g], xv), scale(${n0} + r, g), acc[r]); }
  }`;
const windowDecl = (kind: 'uniform' | 'storage, read', i: number) => `@group(0) @binding(${i}) var<${kind}> w${i}: array<vec4<u32>, ${RW * G}>;\n`;
const oneWindow = (kind: 'uniform' | 'storage, read') => common + windowDecl(kind, 0) + `
@compute @workgroup_size(${RW / 2}) fn main(@builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r0 = li * 2u;
  var acc: array<f32, 2>;${rowsLoop('w0', 'r0', 'r0')}
  y[r0] = acc[0]; y[r0 + 1u] = acc[1];
}`;
const switched = common + Array.from({ length: W }, (_, i) => windowDecl('uniform', i)).join('') + `
@compute @workgroup_size(${RW / 2}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r0 = li * 2u;
  let n0 = wid.x * ${RW}u + r0;
  var acc: array<f32, 2>;
  switch wid.x {
${Array.from({ length: W }, (_, i) => `    case ${i}u: {${rowsLoop(`w${i}`, 'r0', 'n0')}\n    }`).join('\n')}
    default: {}
  }
  y[n0] = acc[0]; y[n0 + 1u] = acc[1];
}`;
const whole = common + `@group(0) @binding(0) var<storage, read> b: array<vec4<u32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 2u;
  var acc: array<f32, 2>;${rowsLoop('b', 'n0', 'n0')}
  y[n0] = acc[0]; y[n0 + 1u] = acc[1];
}`;

const pipe = (code: string) => dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code }), entryPoint: 'main' } });
const windowBytes = RW * G * 16;
const scaleBytes = (rows: number) => rows * G * 2;
/** One command buffer: for each weight copy, one pass of `dispatches` (bind group, workgroup count) pairs. */
const recorder = (p: GPUComputePipeline, groupsOf: (w: GPUBuffer) => [GPUBindGroup, number][]) => {
  const lists = weights.map(groupsOf);
  return () => {
    const enc = dev.createCommandEncoder();
    for (const list of lists) {
      const pass = enc.beginComputePass();
      pass.setPipeline(p);
      for (const [bg, n] of list) { pass.setBindGroup(0, bg); pass.dispatchWorkgroups(n); }
      pass.end();
    }
    dev.queue.submit([enc.finish()]);
  };
};
// The output binding stays at offset 0 (storage offsets must be 256-aligned): every window writes rows 0.., which
// costs the same and is all the timing needs.
const sharedEntries = (rowsBefore: number, rows: number): GPUBindGroupEntry[] => [
  { binding: 20, resource: { buffer: x } },
  { binding: 21, resource: { buffer: scales, offset: scaleBytes(rowsBefore), size: scaleBytes(rows) } },
  { binding: 22, resource: { buffer: out, offset: 0, size: rows * 4 } },
];
const cases: Record<string, () => void> = {};
for (const [name, kind] of [['S1', 'storage, read'], ['U1', 'uniform']] as const) {
  const p = pipe(oneWindow(kind));
  cases[`${name}: one ${kind === 'uniform' ? 'uniform' : 'storage'} window a dispatch (${N / RW} dispatches)`] = recorder(p, (w) =>
    Array.from({ length: N / RW }, (_, d) => [dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [
      { binding: 0, resource: { buffer: w, offset: d * windowBytes, size: windowBytes } }, ...sharedEntries(d * RW, RW)] }), 1]));
}
{
  const p = pipe(switched);
  cases[`UW: ${W} uniform windows a dispatch (${N / RW / W} dispatches)`] = recorder(p, (w) =>
    Array.from({ length: N / RW / W }, (_, d) => [dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [
      ...Array.from({ length: W }, (_, i) => ({ binding: i, resource: { buffer: w, offset: (d * W + i) * windowBytes, size: windowBytes } })),
      ...sharedEntries(d * RW * W, RW * W)] }), W]));
}
{
  const p = pipe(whole);
  cases['AU2: codes from storage, one dispatch'] = recorder(p, (w) => [[dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [
    { binding: 0, resource: { buffer: w } }, ...sharedEntries(0, N)] }), N / 128]]);
}
console.log(`q4 GEMV N ${N} x K ${K}: windows of ${RW} rows (${windowBytes} bytes); wall ms per call, min / median of ${ROUNDS} rounds`);
for (const [name, t] of await timeInterleaved(gpu, cases, ROUNDS, COPIES)) {
  console.log(`${name.padEnd(56)} ${minimum(t.wall).toFixed(2)} / ${median(t.wall).toFixed(2)}`);
}
gpu.destroy();
