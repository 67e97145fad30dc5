// First step of the attention backward pass: for every (query row, head), delta = dO . O (the row sum of
// dP * P that softmax's gradient subtracts), packed next to the forward's log-sum-exp pair (max, log sum) as
// stats[3 rh ..] = (max, log sum, delta), so the two backward kernels read all three through one binding.
// O and dO are [B, Lq, heads * head_dim] (contiguous heads); lse is [B, Lq, heads, 2].
// Defines: OT (O's storage type), GT (dO's).

struct Params {
  row_heads: u32,
  head_dim: u32,
  o_off: u32,
  g_off: u32,
  l_off: u32,
  s_off: u32,
  grid_stride: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> o: array<${OT}>;
@group(0) @binding(2) var<storage, read> g: array<${GT}>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let rh = gid.x + gid.y * p.grid_stride;
  if (rh >= p.row_heads) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.head_dim; c++) {
    s += f32(o[p.o_off + rh * p.head_dim + c]) * f32(g[p.g_off + rh * p.head_dim + c]);
  }
  stats[p.s_off + 3u * rh] = lse[p.l_off + 2u * rh];
  stats[p.s_off + 3u * rh + 1u] = lse[p.l_off + 2u * rh + 1u];
  stats[p.s_off + 3u * rh + 2u] = s;
}
