// Batched row copy along the sequence dim: dst[b, start + j, c] = src[b, j, c] with dst [B, T, D] and
// src [B, L, D] (KV-cache appends, concatenation). Converts between float types on the way.
// Defines: SRC, DST (storage types).

struct Params {
  n: u32,       // B * L * D
  l: u32,
  d: u32,
  t: u32,
  start: u32,
  src_off: u32,
  dst_off: u32,
  row_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<${SRC}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${DST}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let j = i / p.d;
  let c = i - j * p.d;
  let b = j / p.l;
  let r = j - b * p.l;
  dst[p.dst_off + (b * p.t + p.start + r) * p.d + c] = ${DST}(src[p.src_off + i]);
}
