// Dropout with a counter-based random stream: element i is kept when hash(i, seed) >= threshold (p * 2^32),
// and scaled by 1 / (1 - p). The mask is never stored: the backward pass calls this kernel on the gradient
// with the same seed and gets the same mask (and so does a recomputation under checkpointing).
// Hash: two rounds of a 32-bit integer finaliser (Wellons' lowbias32) over the index mixed with the seed.

struct Params {
  n: u32,
  x_off: u32,
  y_off: u32,
  row_stride: u32,
  seed_lo: u32,
  seed_hi: u32,
  threshold: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn lowbias32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let r = lowbias32(lowbias32(i ^ p.seed_lo) + p.seed_hi);
  y[p.y_off + i] = select(0.0, x[p.x_off + i] * p.scale, r >= p.threshold);
}
