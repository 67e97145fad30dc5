// Element type conversion: y[i] = OUT(x[i]). f32 -> f16 rounds to nearest even (as the host does).
// Defines: IN, OUT (f32, f16, i32, u32).

struct Params {
  n: u32,
  x_off: u32,
  y_off: u32,
  row_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${IN}>;
@group(0) @binding(2) var<storage, read_write> y: array<${OUT}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  y[p.y_off + i] = ${OUT}(x[p.x_off + i]);
}
