// Row scatter in place: dst[rows[k], c] = src[k, c] (BLIP-2 writes the projected query outputs into the
// <image> token rows of inputs_embeds). Rows outside [0, n_rows) are skipped, never written.
// Defines: SRC, DST (storage types).

struct Params {
  n: u32,       // src rows * d
  d: u32,
  src_off: u32,
  rows_off: u32,
  dst_off: u32,
  n_rows: u32,
  row_stride: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<${SRC}>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
@group(0) @binding(3) var<storage, read_write> dst: array<${DST}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let k = i / p.d;
  let c = i - k * p.d;
  let r = rows[p.rows_off + k];
  if (r < 0 || u32(r) >= p.n_rows) { return; }
  dst[p.dst_off + u32(r) * p.d + c] = ${DST}(src[p.src_off + i]);
}
