// Element type conversion: y[i] = OUT(x[i]). f32 -> f16 rounds to nearest even (as the host does).
// Defines: IN, OUT (f32, f16, i32, u32); or PACK_F16: f32 x to f16 bits written as u32 pairs,
// y[i] = pack2x16float(x[2i], x[2i + 1]), which needs no shader-f16 (weight loading converts on the GPU with it).

struct Params {
  n: u32, // elements, or pairs with PACK_F16
  x_off: u32,
  y_off: u32,
  row_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if PACK_F16
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;
#else
@group(0) @binding(1) var<storage, read> x: array<${IN}>;
@group(0) @binding(2) var<storage, read_write> y: array<${OUT}>;
#endif

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
#if PACK_F16
  let e = p.x_off + 2u * i;
  y[p.y_off + i] = pack2x16float(vec2<f32>(x[e], x[e + 1u]));
#else
  y[p.y_off + i] = ${OUT}(x[p.x_off + i]);
#endif
}
