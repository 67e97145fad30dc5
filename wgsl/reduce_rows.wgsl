// Column sums of a row-major [rows, cols] matrix: out[c] = sum_r x[r, c] (+ out[c] with ACCUMULATE). The
// bias gradient of a linear layer (the sum of dY over its rows), the gradient of a broadcast operand, and
// gradient accumulation across calls. One invocation per column walks the rows in order, so the sum is
// deterministic; neighbouring invocations read neighbouring columns (coalesced on GPUs, one SIMD vector of
// loads on CPU adapters). Rows are few here (tokens of one batch), columns many (hidden sizes).
// Defines: X (storage type of x), ACCUMULATE.

struct Params {
  rows: u32,
  cols: u32,
  x_off: u32,
  o_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<${X}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += f32(x[p.x_off + r * p.cols + c]); }
#if ACCUMULATE
  s += out[p.o_off + c];
#endif
  out[p.o_off + c] = s;
}
