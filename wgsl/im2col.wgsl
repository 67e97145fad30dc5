// Patch extraction for a stride-p, kernel-p convolution as a matmul: pixels [B, C, H, W] ->
// out [B, PH*PW, C*p*p], patches in row-major (py, px) order, columns in (c, ky, kx) order, so the conv
// weight [O, C, p, p] viewed as [O, C*p*p] is the linear weight. One invocation per output element;
// neighbouring invocations read neighbouring pixels (kx is the fastest index).
// Defines: T (storage type of pixels and output).

struct Params {
  n: u32,       // output elements
  c: u32,
  h: u32,
  w: u32,
  psize: u32,
  ph: u32,      // patches per column (H / p, floored)
  pw: u32,      // patches per row (W / p, floored)
  in_off: u32,
  out_off: u32,
  row_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pixels: array<${T}>;
@group(0) @binding(2) var<storage, read_write> out: array<${T}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let pp = p.psize * p.psize;
  let cols = p.c * pp;
  let col = i % cols;
  let token = i / cols;
  let patches = p.ph * p.pw;
  let b = token / patches;
  let idx = token - b * patches;
  let py = idx / p.pw;
  let px = idx - py * p.pw;
  let ch = col / pp;
  let k = col - ch * pp;
  let ky = k / p.psize;
  let kx = k - ky * p.psize;
  let y = py * p.psize + ky;
  let x = px * p.psize + kx;
  out[p.out_off + i] = pixels[p.in_off + ((b * p.c + ch) * p.h + y) * p.w + x];
}
