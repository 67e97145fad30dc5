// The textbook matmul, one output per invocation, f32, B in [K, N] layout: the benchmark's baseline
// for what a kernel gains over the obvious code. Not used by the engine.
// Grid: x = ceil(N / 16), y = ceil(M / 16).

struct Params {
  M: u32,
  N: u32,
  K: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let m = gid.y;
  if (m >= p.M || n >= p.N) {
    return;
  }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    acc += a[m * p.K + k] * b[k * p.N + n];
  }
  c[m * p.N + n] = acc;
}
