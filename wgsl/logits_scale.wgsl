// In-place scaling x[i] *= factor (temperature and other row-wise scalars), f32 math.
// Defines: T (storage type).

struct Params {
  n: u32,
  off: u32,
  row_stride: u32,
  factor: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<${T}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  x[p.off + i] = ${T}(f32(x[p.off + i]) * p.factor);
}
