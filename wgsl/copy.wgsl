// Contiguous element copy between (possibly offset) views: y[y_off + i] = x[x_off + i].
// Also the memory-bandwidth baseline of the kernel benchmark.
// Defines: T (element type: f32, f16, i32, u32).

struct Params {
  n: u32,
  x_off: u32,
  y_off: u32,
  row_stride: u32, // threads per grid row (num_workgroups.x * 256), for grids taller than 65535 workgroups
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> y: array<${T}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  y[p.y_off + i] = x[p.x_off + i];
}
