// y[y_off + i] = value for i < n: zeroed gradient buffers (pooled buffers come back with old contents).
// Defines: T (f32, i32 or u32; the value is given as its 32-bit pattern).

struct Params {
  n: u32,
  y_off: u32,
  row_stride: u32,
  bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<${T}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  y[p.y_off + i] = bitcast<${T}>(p.bits);
}
