/**
 * Layouts of a q4 decode GEMV (N 8192 x K 2560, M = 1) tried against gemv_rows' on llvmpipe, in raw WGSL so that
 * each idea is one small kernel (docs/quantization.md, "What costs what on lavapipe", has the measured table):
 *   A   a row per lane, 4 rows per invocation, x shared by subgroupBroadcast (what gemv_rows' QGROUPS does)
 *   A1  A with explicit fma chains instead of dot()          A2  A with offset-binary codes taken by masks alone
 *   A3  A's loads without any decoding (the loads' floor)    A8  8 rows per invocation
 *   AS  A with each row's scales read 8 per 16-byte load
 *   B/C every lane of a subgroup on the same row, rows from workgroup_id (lane-uniform addresses), workgroups of 8
 *   T   A with the codes in an rgba32uint texture (textureLoad instead of a storage load)
 *   F   the f16 equivalent (8 weights per 16-byte load), for scale    FU  F with x from a uniform buffer
 *   A2r A with 2 rows per lane       AU2/AU4  A2r/A with x from a uniform buffer (what gemv_rows' A_UNIFORM does)
 *   AUS2/AUS4  AU2/AU4 with the scales read 8 per load              AW2  A2r with x staged in workgroup memory
 *   AU0 AU2 without any weight or scale loads (codes made from the counters): the ALU's floor
 *   TU2 AU2 with the codes in an rgba32uint texture    AM2 AU2 with the codes taken by masks (offset binary), x pre-scaled
 *   X4/X8 lanes over K: a subgroup's 8 lanes share 4 or 8 rows, each lane its own groups with its own x (no broadcasts)
 *   AI2 AU2 with the weight stored 16 rows interleaved by group (a subgroup's 16 rows read 256 contiguous bytes a step)
 *   FI  F with the same interleaving (16 rows by 8 columns)
 *   AP1/AP2 AU2 with each row's codes and scale loaded one or two groups ahead (software pipelining)
 * Each call runs 8 distinct copies of the weight (no cache reuse); wall time per call (the device waited on
 * quietly), minimum and median over ROUNDS interleaved rounds. Results are checked against A (max |diff|).
 *
 *   [ROUNDS=15] [ONLY=A,AU2,F] [N=8192] [K=2560] npx tsx bench/gemv-layouts.ts
 */
import { Gpu } from '../src/gpu/gpu.js';
import { Q4_GROUP_DOT_WGSL } from './q4-group-wgsl.js';
const gpu = await Gpu.create();
const dev = gpu.device;
const N = Number(process.env.N ?? 8192), K = Number(process.env.K ?? 2560), G = K / 32;
const codes = new Uint32Array(N * G * 4);
for (let i = 0; i < codes.length; i++) codes[i] = (Math.imul(i, 2654435761) >>> 0) & 0x77777777;
const scales = new Uint32Array((N * G) / 2).fill(0x3c003c00);
const x = Float32Array.from({ length: K }, (_, i) => Math.sin(i));
const COPIES = 8;
const mk = (data: Uint32Array<ArrayBuffer> | Float32Array<ArrayBuffer>, usage = GPUBufferUsage.STORAGE) => {
  const b = dev.createBuffer({ size: data.byteLength, usage: usage | GPUBufferUsage.COPY_DST });
  dev.queue.writeBuffer(b, 0, data);
  return b;
};
const bs = Array.from({ length: COPIES }, () => mk(codes));
const ss = mk(scales);
const xb = mk(x);
const xu = mk(x, GPUBufferUsage.UNIFORM);
// AM: x pre-scaled by 16^-p (p = k mod 8; the top nibble, p = 7, is shifted down and takes x as it is) and 8 * the sum
// of each group's x.
const xPre = mk(Float32Array.from(x, (v, k) => (k % 8 === 7 ? v : v * 2 ** (-4 * (k % 8)))), GPUBufferUsage.UNIFORM);
const groupSums = mk(Float32Array.from({ length: G }, (_, g) => 8 * x.slice(g * 32, g * 32 + 32).reduce((s, v) => s + v, 0)), GPUBufferUsage.UNIFORM);
const out = dev.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const shared = `
@group(0) @binding(1) var<storage, read> bsc: array<u32>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
const K = ${K}u; const G = ${G}u; const N = ${N}u;
fn scale(row: u32, g: u32) -> f32 { let i = row * G + g; return unpack2x16float(bsc[i >> 1u])[i & 1u]; }
${Q4_GROUP_DOT_WGSL}// The group's 32 x values, lane i's four at xs[i], in every lane.
fn spread(xv: vec4<f32>) -> array<vec4<f32>, 8> {
  return array<vec4<f32>, 8>(subgroupBroadcast(xv, 0u), subgroupBroadcast(xv, 1u), subgroupBroadcast(xv, 2u), subgroupBroadcast(xv, 3u),
                             subgroupBroadcast(xv, 4u), subgroupBroadcast(xv, 5u), subgroupBroadcast(xv, 6u), subgroupBroadcast(xv, 7u));
}
`;
const common = `@group(0) @binding(0) var<storage, read> b: array<vec4<u32>>;` + shared;
/** 4 rows per lane, one group per step: `load` gives row (n0 + r)'s codes of group g as q, `rowDot` its sum against xv. */
const rows4 = (decl: string, load: string, rowDot: string) => decl + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 4u;
  var acc = vec4<f32>(0.0);
  for (var g = 0u; g < G; g++) {
    let xv = a[g * 8u + lane];
    var d = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
      let q = ${load};
      d[r] = ${rowDot};
    }
    acc += d * vec4<f32>(scale(n0, g), scale(n0 + 1u, g), scale(n0 + 2u, g), scale(n0 + 3u, g));
  }
  for (var r = 0u; r < 4u; r++) { c[n0 + r] = acc[r]; }
}`;
// A: one row per lane x 4 rows (lane-divergent addresses), x by broadcast (as gemv_rows QGROUPS).
const kA = rows4(common, 'b[(n0 + r) * G + g]', 'group_dot(q, xv)');
// B: workgroup of 8 = one subgroup; R rows per workgroup; row addresses from workgroup_id (uniform); each lane takes
// 4 codes of every group (codes 4*lane..4*lane+3 = nibbles of word lane/2), x[4*lane..] its own.
const kB = (R: number) => common + `
@compute @workgroup_size(8) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = wid.x * ${R}u;
  var acc: array<f32, ${R}>;
  let sh = 16u * (lane & 1u);
  let wsel = lane >> 1u;
  for (var g = 0u; g < G; g++) {
    let xv = a[g * 8u + lane];
    for (var r = 0u; r < ${R}u; r++) {
      let q = b[(n0 + r) * G + g];
      let w = select(select(q.x, q.y, wsel == 1u), select(q.z, q.w, wsel == 3u), wsel >= 2u);
      let v = vec4<i32>(bitcast<i32>(w >> sh));
      let cv = vec4<f32>((v << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u));
      acc[r] = fma(dot(xv, cv), scale(n0 + r, g), acc[r]);
    }
  }
  for (var r = 0u; r < ${R}u; r++) {
    let s = subgroupAdd(acc[r]);
    if (lane == 0u) { c[n0 + r] = s; }
  }
}`;
// C: like B but each workgroup walks R rows one after another (row loop outside the group loop).
const kC = (R: number) => common + `
@compute @workgroup_size(8) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let sh = 16u * (lane & 1u);
  let wsel = lane >> 1u;
  for (var r = 0u; r < ${R}u; r++) {
    let n = wid.x * ${R}u + r;
    var acc = 0.0;
    for (var g = 0u; g < G; g++) {
      let xv = a[g * 8u + lane];
      let q = b[n * G + g];
      let w = select(select(q.x, q.y, wsel == 1u), select(q.z, q.w, wsel == 3u), wsel >= 2u);
      let v = vec4<i32>(bitcast<i32>(w >> sh));
      let cv = vec4<f32>((v << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u));
      acc = fma(dot(xv, cv), scale(n, g), acc);
    }
    let s = subgroupAdd(acc);
    if (lane == 0u) { c[n] = s; }
  }
}`;
// A1: as A, fma chains instead of dot.
const kA1 = common + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 4u;
  var acc = vec4<f32>(0.0);
  for (var g = 0u; g < G; g++) {
    let xv = a[g * 8u + lane];
    let xs = spread(xv);
    var d = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
      let q = b[(n0 + r) * G + g];
      var t = 0.0;
      for (var j = 0u; j < 4u; j++) {
        let c = codes8(bitcast<i32>(q[j]));
        let x0 = xs[2u * j]; let x1 = xs[2u * j + 1u];
        t = fma(x0.x, c[0].x, t); t = fma(x0.y, c[0].y, t); t = fma(x0.z, c[0].z, t); t = fma(x0.w, c[0].w, t);
        t = fma(x1.x, c[1].x, t); t = fma(x1.y, c[1].y, t); t = fma(x1.z, c[1].z, t); t = fma(x1.w, c[1].w, t);
      }
      d[r] = t;
    }
    acc += d * vec4<f32>(scale(n0, g), scale(n0 + 1u, g), scale(n0 + 2u, g), scale(n0 + 3u, g));
  }
  for (var r = 0u; r < 4u; r++) { c[n0 + r] = acc[r]; }
}`;
// A2: offset-binary codes taken by masks alone (no shifts): (code + 8) * 16^i converted directly, x pre-scaled by
// 16^-i, the offset removed once per group through the sum of x; the top nibble is read signed.
const kA2 = common + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 4u;
  var acc = vec4<f32>(0.0);
  let odd = (lane & 1u) == 1u;
  let pre = select(vec4<f32>(1.0, 0.0625, 0.00390625, 0.000244140625), vec4<f32>(1.52587890625e-5, 9.5367431640625e-7, 5.9604644775390625e-8, 3.725290298461914e-9), odd);
  let offmask = select(vec4<f32>(1.0), vec4<f32>(1.0, 1.0, 1.0, 0.0), odd);
  for (var g = 0u; g < G; g++) {
    let xr = a[g * 8u + lane];
    let xv = xr * pre;
    let off = 8.0 * subgroupAdd(dot(xr, offmask));
    let xs = spread(xv);
    var d = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
      let qr = b[(n0 + r) * G + g];
      let q = qr ^ vec4<u32>(0x88888888u);
      var t = -off;
      for (var j = 0u; j < 4u; j++) {
        let w = q[j];
        let x0 = xs[2u * j]; let x1 = xs[2u * j + 1u];
        t = fma(x0.x, f32(w & 0xFu), t);
        t = fma(x0.y, f32(w & 0xF0u), t);
        t = fma(x0.z, f32(w & 0xF00u), t);
        t = fma(x0.w, f32(w & 0xF000u), t);
        t = fma(x1.x, f32(w & 0xF0000u), t);
        t = fma(x1.y, f32(w & 0xF00000u), t);
        t = fma(x1.z, f32(w & 0xF000000u), t);
        t = fma(x1.w, f32(bitcast<i32>(qr[j] & 0xF0000000u)), t);
      }
      d[r] = t;
    }
    acc += d * vec4<f32>(scale(n0, g), scale(n0 + 1u, g), scale(n0 + 2u, g), scale(n0 + 3u, g));
  }
  for (var r = 0u; r < 4u; r++) { c[n0 + r] = acc[r]; }
}`;
// A3: loads only (codes bitcast, no decoding): the floor the loads set.
const kA3 = rows4(common, 'b[(n0 + r) * G + g]', 'dot(xv, bitcast<vec4<f32>>(q))');
// T: as A, codes read from an rgba32uint texture [N rows, G texels] with textureLoad (llvmpipe's texel fetch).
const kT = rows4(`@group(0) @binding(0) var tb: texture_2d<u32>;` + shared, 'textureLoad(tb, vec2<u32>(g, n0 + r), 0)', 'group_dot(q, xv)');
// R rows per lane, one group per step, x of the group from `xLoad`, row (n0 + r)'s unscaled sum from `rowDot` (the
// `keep` expression keeps binding 2 in use).
const rowsR = (decl: string, R: number, xLoad: string, keep = '', rowDot = 'group_dot(b[(n0 + r) * G + g], xv)') => decl + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * ${R}u;
  var acc: array<f32, ${R}>;
  for (var g = 0u; g < G; g++) {
    let xv = ${xLoad};
    for (var r = 0u; r < ${R}u; r++) {
      acc[r] = fma(${rowDot}, scale(n0 + r, g), acc[r]);
    }
  }
  for (var r = 0u; r < ${R}u; r++) { c[n0 + r] = acc[r]${keep}; }
}`;
const kAR = (R: number) => rowsR(common, R, 'a[g * 8u + lane]');
// F: the f16 equivalent (same N x K, weights f16 [N, K] read 8 per vec4<u32>, x per lane shared by broadcast), 2 rows per lane.
const kF = (R: number, uniformX = false, interleaved = false) => `
@group(0) @binding(0) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
${uniformX ? `@group(0) @binding(5) var<uniform> au: array<vec4<f32>, ${K / 4}>;` : ''}
const K = ${K}u; const K8 = ${K / 8}u;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * ${R}u;
  var acc: array<vec4<f32>, ${R}>;
  for (var k = 0u; k < K8; k++) {
    let i = k * 8u + lane;
    let v = ${uniformX ? 'au[i >> 2u][i & 3u]' : 'a[i]'};
    let xa = vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
    let xb = vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
    for (var r = 0u; r < ${R}u; r++) {
      let q = b[${interleaved ? '(((n0 + r) >> 4u) * K8 + k) * 16u + ((n0 + r) & 15u)' : '(n0 + r) * K8 + k'}];
      let wa = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
      let wb = vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
      acc[r] = fma(xa, wa, fma(xb, wb, acc[r]));
    }
  }
  for (var r = 0u; r < ${R}u; r++) { c[n0 + r] = dot(acc[r], vec4<f32>(1.0))${uniformX ? ' + 0.0 * a[0]' : ''}; }
}`;
// AS: as A (4 rows per lane), each row's scales read 8 at a time (one vec4<u32> every 8 groups).
const kAS = common + `
@group(0) @binding(4) var<storage, read> bsv: array<vec4<u32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 4u;
  var acc = vec4<f32>(0.0);
  for (var g8 = 0u; g8 < G; g8 += 8u) {
    let sv0 = bsv[(n0 * G + g8) >> 3u];
    let sv1 = bsv[((n0 + 1u) * G + g8) >> 3u];
    let sv2 = bsv[((n0 + 2u) * G + g8) >> 3u];
    let sv3 = bsv[((n0 + 3u) * G + g8) >> 3u];
    for (var j = 0u; j < 4u; j++) {
      let s0 = unpack2x16float(sv0[j]); let s1 = unpack2x16float(sv1[j]); let s2 = unpack2x16float(sv2[j]); let s3 = unpack2x16float(sv3[j]);
      for (var h = 0u; h < 2u; h++) {
        let g = g8 + 2u * j + h;
        let xv = a[g * 8u + lane];
        var d = vec4<f32>(0.0);
        for (var r = 0u; r < 4u; r++) {
          d[r] = group_dot(b[(n0 + r) * G + g], xv);
        }
        acc += d * vec4<f32>(s0[h], s1[h], s2[h], s3[h]);
      }
    }
  }
  for (var r = 0u; r < 4u; r++) { c[n0 + r] = acc[r]; }
}`;

// AU: as A, x read from a uniform buffer (llvmpipe gathers uniform-buffer words with no per-lane branch).
const commonU = `@group(0) @binding(0) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(5) var<uniform> au: array<vec4<f32>, ${K / 4}>;` + shared;
const rowsU = (R: number) => rowsR(commonU, R, 'au[g * 8u + lane]', ' + 0.0 * a[0].x');
// AW: as A, x staged in workgroup memory first.
const rowsW = (R: number) => common + `
var<workgroup> xw: array<vec4<f32>, ${K / 4}>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
  for (var i = li; i < ${K / 4}u; i += 64u) { xw[i] = a[i]; }
  workgroupBarrier();
  let n0 = gid.x * ${R}u;
  var acc: array<f32, ${R}>;
  for (var g = 0u; g < G; g++) {
    let xv = xw[g * 8u + lane];
    for (var r = 0u; r < ${R}u; r++) {
      acc[r] = fma(group_dot(b[(n0 + r) * G + g], xv), scale(n0 + r, g), acc[r]);
    }
  }
  for (var r = 0u; r < ${R}u; r++) { c[n0 + r] = acc[r]; }
}`;
// AUS: x from a uniform buffer and each row's scales read 8 per 16-byte load (one vec4<u32> every 8 groups).
const rowsUS = (R: number) => commonU + `
@group(0) @binding(4) var<storage, read> bsv: array<vec4<u32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * ${R}u;
  var acc: array<f32, ${R}>;
  for (var g8 = 0u; g8 < G; g8 += 8u) {
    var sv: array<vec4<u32>, ${R}>;
    for (var r = 0u; r < ${R}u; r++) { sv[r] = bsv[((n0 + r) * G + g8) >> 3u]; }
    for (var j = 0u; j < 8u; j++) {
      let g = g8 + j;
      let xv = au[g * 8u + lane];
      for (var r = 0u; r < ${R}u; r++) {
        let s = unpack2x16float(sv[r][j >> 1u])[j & 1u];
        acc[r] = fma(group_dot(b[(n0 + r) * G + g], xv), s, acc[r]);
      }
    }
  }
  for (var r = 0u; r < ${R}u; r++) { c[n0 + r] = acc[r] + 0.0 * a[0].x + 0.0 * f32(bsc[0]); }
}`;

// A0: as AU2 but no weight or scale loads at all (codes made from the counters): the ALU floor.
const rowsU0 = (R: number) => commonU + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * ${R}u;
  var acc: array<f32, ${R}>;
  for (var g = 0u; g < G; g++) {
    let xv = au[g * 8u + lane];
    for (var r = 0u; r < ${R}u; r++) {
      let h = (n0 + r) * 2654435761u + g * 40503u;
      acc[r] = fma(group_dot(vec4<u32>(h, h ^ 0x5555u, h + 77u, h * 3u), xv), 1.0, acc[r]);
    }
  }
  for (var r = 0u; r < ${R}u; r++) { c[n0 + r] = acc[r] + 0.0 * a[0].x + 0.0 * f32(b[0].x) + 0.0 * f32(bsc[0]); }
}`;
// AP: AU2 with each row's codes and scale for group g + D loaded D steps ahead (software pipelining), so that the
// loads' latency overlaps the current group's decoding.
const rowsP = (D: number) => commonU + `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = gid.x * 2u;
  var acc = vec2<f32>(0.0);
  var q0: array<vec4<u32>, ${D}>; var q1: array<vec4<u32>, ${D}>; var s: array<vec2<f32>, ${D}>;
  for (var j = 0u; j < ${D}u; j++) { q0[j] = b[n0 * G + j]; q1[j] = b[(n0 + 1u) * G + j]; s[j] = vec2<f32>(scale(n0, j), scale(n0 + 1u, j)); }
  for (var g = 0u; g < G; g += ${D}u) {
    for (var j = 0u; j < ${D}u; j++) {
      let c0 = q0[j]; let c1 = q1[j]; let sc = s[j];
      let gn = min(g + j + ${D}u, G - 1u);
      q0[j] = b[n0 * G + gn]; q1[j] = b[(n0 + 1u) * G + gn]; s[j] = vec2<f32>(scale(n0, gn), scale(n0 + 1u, gn));
      let xv = au[(g + j) * 8u + lane];
      acc = fma(vec2<f32>(group_dot(c0, xv), group_dot(c1, xv)), sc, acc);
    }
  }
  c[n0] = acc.x + 0.0 * a[0].x; c[n0 + 1u] = acc.y;
}`;
// AM: AU2 with the codes taken in place by masks (offset binary, code ^ 8: an AND and a conversion per code instead
// of a shift pair and a conversion), x pre-scaled by 16^-position (exact: a power of two; the top nibble is shifted
// down instead) and the offset removed once per group with 8 * sum(x); both made on the host here, as a per-token
// pass would make them, so the kernel's loop is all that is timed.
const commonM = commonU + `
@group(0) @binding(6) var<uniform> gsum: array<vec4<f32>, ${G / 4}>;
fn nib_lo(w: u32) -> vec4<f32> { return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) & vec4<u32>(0xFu, 0xF0u, 0xF00u, 0xF000u))); }
fn nib_hi(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>((vec4<u32>(w) & vec4<u32>(0xF0000u, 0xF00000u, 0xF000000u, 0xFFFFFFFFu)) >> vec4<u32>(0u, 0u, 0u, 28u)));
}
fn group_dot_m(q: vec4<u32>, xv: vec4<f32>, off: f32) -> f32 {
  let w = q ^ vec4<u32>(0x88888888u);
  return ${[0, 1, 2, 3].map((j) => `dot(subgroupBroadcast(xv, ${2 * j}u), nib_lo(w.${'xyzw'[j]})) + dot(subgroupBroadcast(xv, ${2 * j + 1}u), nib_hi(w.${'xyzw'[j]}))`).join(' +\n    ')} - off;
}`;
const rowsM = (R: number) => rowsR(commonM, R, 'au[g * 8u + lane]', ' + 0.0 * a[0].x', 'group_dot_m(b[(n0 + r) * G + g], xv, gsum[g >> 2u][g & 3u])');
// TU: AU with the codes in an rgba32uint texture (textureLoad: llvmpipe's texel fetch gathers all lanes at once).
const rowsTU = (R: number) =>
  rowsR(`@group(0) @binding(0) var tb: texture_2d<u32>;
@group(0) @binding(5) var<uniform> au: array<vec4<f32>, ${K / 4}>;` + shared, R, 'au[g * 8u + lane]', ' + 0.0 * a[0].x', 'group_dot(textureLoad(tb, vec2<u32>(g, n0 + r), 0), xv)');
// X: lanes over K instead of rows: the 8 lanes of a subgroup share R rows, lane i taking groups i, i + 8, ... of
// each; x of the lane's group comes from the uniform buffer straight into its registers (no broadcasts) and serves
// the R rows; each lane's partial sums meet by subgroupAdd at the end.
const rowsX = (R: number) => commonU + `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = (wid.x * 8u + li / 8u) * ${R}u;
  var acc: array<f32, ${R}>;
  for (var g = lane; g < G; g += 8u) {
    let x0 = au[g * 8u]; let x1 = au[g * 8u + 1u]; let x2 = au[g * 8u + 2u]; let x3 = au[g * 8u + 3u];
    let x4 = au[g * 8u + 4u]; let x5 = au[g * 8u + 5u]; let x6 = au[g * 8u + 6u]; let x7 = au[g * 8u + 7u];
    for (var r = 0u; r < ${R}u; r++) {
      let q = b[(n0 + r) * G + g];
      let c0 = codes8(bitcast<i32>(q.x)); let c1 = codes8(bitcast<i32>(q.y)); let c2 = codes8(bitcast<i32>(q.z)); let c3 = codes8(bitcast<i32>(q.w));
      let d = dot(x0, c0[0]) + dot(x1, c0[1]) + dot(x2, c1[0]) + dot(x3, c1[1]) + dot(x4, c2[0]) + dot(x5, c2[1]) + dot(x6, c3[0]) + dot(x7, c3[1]);
      acc[r] = fma(d, scale(n0 + r, g), acc[r]);
    }
  }
  for (var r = 0u; r < ${R}u; r++) {
    let s = subgroupAdd(acc[r]);
    if (lane == 0u) { c[n0 + r] = s + 0.0 * a[0].x; }
  }
}`;
const pipes: Record<string, [GPUComputePipeline, number]> = {};
const mkPipe = (code: string) => dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code: 'enable subgroups;\n' + code }), entryPoint: 'main' } });
pipes['A  q4, a row per lane, 4 rows (as gemv_rows)'] = [mkPipe(kA), N / 4 / 64];
pipes['A1 q4, fma chains for dot'] = [mkPipe(kA1), N / 4 / 64];
pipes['A2 q4, masks + offset via sum x'] = [mkPipe(kA2), N / 4 / 64];
pipes['A3 q4, loads only (no decode)'] = [mkPipe(kA3), N / 4 / 64];
pipes['A8 q4, 8 rows per lane'] = [mkPipe(kAR(8)), N / 8 / 64];
pipes['AS q4, scales 8 per load'] = [mkPipe(kAS), N / 4 / 64];
pipes['B  q4, uniform rows, wg of 8'] = [mkPipe(kB(4)), N / 4];
pipes['C  q4, uniform row loop, wg 8'] = [mkPipe(kC(64)), N / 64];
pipes['T  q4, codes in a texture'] = [mkPipe(kT), N / 4 / 64];
pipes['F  f16, 2 rows per lane'] = [mkPipe(kF(2)), N / 2 / 64];
pipes['FU f16, 2 rows, x in a uniform buffer'] = [mkPipe(kF(2, true)), N / 2 / 64];
pipes['FI f16, 2 rows, 16 rows interleaved by 8 columns'] = [mkPipe(kF(2, false, true)), N / 2 / 64];
pipes['A2r q4, 2 rows per lane'] = [mkPipe(kAR(2)), N / 2 / 64];
pipes['AU2 q4, 2 rows, x in a uniform buffer'] = [mkPipe(rowsU(2)), N / 2 / 64];
pipes['AU4 q4, 4 rows, x in a uniform buffer'] = [mkPipe(rowsU(4)), N / 4 / 64];
pipes['AUS2 q4, 2 rows, x uniform, scales 8 per load'] = [mkPipe(rowsUS(2)), N / 2 / 64];
pipes['AUS4 q4, 4 rows, x uniform, scales 8 per load'] = [mkPipe(rowsUS(4)), N / 4 / 64];
pipes['AP1 q4, AU2 with loads one group ahead'] = [mkPipe(rowsP(1)), N / 2 / 64];
pipes['AP2 q4, AU2 with loads two groups ahead'] = [mkPipe(rowsP(2)), N / 2 / 64];
pipes['AU0 q4, 2 rows, no weight loads (ALU floor)'] = [mkPipe(rowsU0(2)), N / 2 / 64];
// x in workgroup memory fits the default 32 KiB only up to K = 8192.
if (K * 4 <= 32768) pipes['AW2 q4, 2 rows, x in workgroup memory'] = [mkPipe(rowsW(2)), N / 2 / 64];
pipes['TU2 q4, 2 rows, x uniform, codes in a texture'] = [mkPipe(rowsTU(2)), N / 2 / 64];
pipes['AM2 q4, 2 rows, x uniform, codes by masks'] = [mkPipe(rowsM(2)), N / 2 / 64];
pipes['AI2 q4, AU2 with 16 rows interleaved by group'] = [mkPipe(rowsR(commonU, 2, 'au[g * 8u + lane]', ' + 0.0 * a[0].x', 'group_dot(b[(((n0 + r) >> 4u) * G + g) * 16u + ((n0 + r) & 15u)], xv)')), N / 2 / 64];
pipes['X4 q4, lanes over K, 4 rows per subgroup'] = [mkPipe(rowsX(4)), N / 4 / 8];
pipes['X8 q4, lanes over K, 8 rows per subgroup'] = [mkPipe(rowsX(8)), N / 8 / 8];
const texs = Array.from({ length: COPIES }, () => {
  const t = dev.createTexture({ size: [G, N], format: 'rgba32uint', usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST });
  dev.queue.writeTexture({ texture: t }, codes, { bytesPerRow: G * 16, rowsPerImage: N }, [G, N]);
  return t;
});
const f16s = Array.from({ length: COPIES }, () => mk(new Uint32Array((N * K) / 2).map((_, i) => 0x3c00 + ((i * 7) & 0x3ff) * 0x10001)));
const groups = new Map<string, GPUBindGroup[]>();
const b0 = bs[0]!;
for (const [name, [p]] of Object.entries(pipes)) {
  if (name.startsWith('AM')) {
    const list = [null, ss, xb, out, xPre, groupSums];
    groups.set(name, bs.map((b) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: list.map((buffer, i) => ({ binding: [0, 1, 2, 3, 5, 6][i]!, resource: { buffer: buffer ?? b } })) })));
    continue;
  }
  if (name.startsWith('FU')) {
    groups.set(name, f16s.map((b) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [b, xb, out, xu].map((buffer, i) => ({ binding: [0, 2, 3, 5][i]!, resource: { buffer } })) })));
    continue;
  }
  if (name.startsWith('AU') || name.startsWith('AI') || name.startsWith('AP') || name.startsWith('X')) {
    const list = name.startsWith('AUS') ? [b0, ss, xb, out, ss, xu] : [b0, ss, xb, out, xu];
    const slots = name.startsWith('AUS') ? [0, 1, 2, 3, 4, 5] : [0, 1, 2, 3, 5];
    groups.set(name, bs.map((b) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: list.map((buffer, i) => ({ binding: slots[i]!, resource: { buffer: buffer === b0 ? b : buffer } })) })));
    continue;
  }
  if (name.startsWith('F')) {
    groups.set(name, f16s.map((b) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [b, xb, out].map((buffer, i) => ({ binding: [0, 2, 3][i]!, resource: { buffer } })) })));
    continue;
  }
  if (name.startsWith('TU')) {
    groups.set(name, texs.map((t) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: t.createView() }, ...[ss, xb, out].map((buffer, i) => ({ binding: i + 1, resource: { buffer } })), { binding: 5, resource: { buffer: xu } }] })));
    continue;
  }
  if (name.startsWith('T')) {
    groups.set(name, texs.map((t) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: t.createView() }, ...[ss, xb, out].map((buffer, i) => ({ binding: i + 1, resource: { buffer } }))] })));
    continue;
  }
  const list = name.startsWith('AS') ? [[0, null], [2, xb], [3, out], [4, ss]] as const : [[0, null], [1, ss], [2, xb], [3, out]] as const;
  groups.set(name, bs.map((b) => dev.createBindGroup({ layout: p.getBindGroupLayout(0), entries: list.map(([binding, buffer]) => ({ binding, resource: { buffer: buffer ?? b } })) })));
}
const run = (name: string) => {
  const [p, n] = pipes[name]!;
  const enc = dev.createCommandEncoder();
  for (const bg of groups.get(name)!) {
    const pass = enc.beginComputePass();
    pass.setPipeline(p);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(n);
    pass.end();
  }
  dev.queue.submit([enc.finish()]);
};
const readOut = async () => {
  const rb = dev.createBuffer({ size: N * 4, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const e = dev.createCommandEncoder(); e.copyBufferToBuffer(out, 0, rb, 0, N * 4); dev.queue.submit([e.finish()]);
  await rb.mapAsync(GPUMapMode.READ); const r = new Float32Array(rb.getMappedRange().slice(0)); rb.destroy(); return r;
};
const results: Record<string, number[]> = {};
let ref: Float32Array | null = null;
for (const name of Object.keys(pipes)) {
  run(name); const o = await readOut();
  if (name.startsWith('F')) { /* different weights */ } else if (!ref) ref = o; else { let e = 0; for (let i = 0; i < N; i++) e = Math.max(e, Math.abs(o[i]! - ref[i]!)); console.log(name, 'max diff vs A', e.toExponential(2)); }
  results[name] = [];
}
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const only = process.env.ONLY?.split(',');
const names = Object.keys(pipes).filter((n) => !only || only.some((o) => n.startsWith(o + ' ')));
for (let round = 0; round < ROUNDS; round++) {
  for (const name of names) {
    const t0 = performance.now();
    run(name); await gpu.sync();
    results[name]!.push((performance.now() - t0) / COPIES);
  }
}
const med = (t: number[]) => [...t].sort((a, b) => a - b)[t.length >> 1]!;
for (const n of names) { const t = results[n]!; console.log(n.padEnd(40), 'wall ms/call min', Math.min(...t).toFixed(2), 'med', med(t).toFixed(2)); }
gpu.destroy();
