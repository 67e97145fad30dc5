// Row-wise argmax with torch.argmax's semantics: the first maximum wins, NaN is larger than every number (the
// first NaN wins), -0 equals +0. Values are compared as order-preserving u32 keys made from their bits, so
// the comparison is exact and independent of how a driver treats NaN or infinities.
// A workgroup reduces one chunk of one row: pass 1 over the values (x), or pass 2 over pass 1's per-chunk
// winners (cand_in). The result is either the index (OUT_INDEX) or a (key, index) candidate (cand_out).
// Defines: HALF (x holds binary16 pairs; x is always bound as u32 words, so no shader-f16 is needed), SOURCE_CAND, OUT_INDEX, WG.

struct Params {
  n: u32,        // elements per row (values, or candidates in pass 2)
  chunk: u32,    // elements per workgroup
  chunks: u32,   // workgroups per row (grid x)
  x_off: u32,    // element offset of x (in elements of x's dtype)
  out_off: u32,
  rows: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if SOURCE_CAND
@group(0) @binding(1) var<storage, read> cand_in: array<vec2<u32>>;
#else
@group(0) @binding(1) var<storage, read> x: array<u32>;
#endif
#if OUT_INDEX
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
#else
@group(0) @binding(2) var<storage, read_write> cand_out: array<vec2<u32>>;
#endif

const NONE = 0xffffffffu;

var<workgroup> best_key: array<u32, ${WG}>;
var<workgroup> best_idx: array<u32, ${WG}>;

// Larger key = larger value; NaN (either sign) is the largest key, -0 maps to +0's key.
fn key_f32(bits: u32) -> u32 {
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return 0xffffffffu; }
  let b = select(bits, 0u, bits == 0x80000000u);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_f16(h: u32) -> u32 {
  if ((h & 0x7fffu) > 0x7c00u) { return 0xffffffffu; }
  let b = select(h, 0u, h == 0x8000u);
  return select(b | 0x8000u, (~b) & 0xffffu, (b & 0x8000u) != 0u) << 16u;
}

#if !SOURCE_CAND
fn value_key(e: u32) -> u32 {
#if HALF
  let word = x[e >> 1u];
  return key_f16((word >> ((e & 1u) * 16u)) & 0xffffu);
#else
  return key_f32(x[e]);
#endif
}
#endif

// (key, idx) beats (best key, best idx): larger key, or the same key at a lower index.
fn beats(k: u32, i: u32, bk: u32, bi: u32) -> bool {
  return k > bk || (k == bk && i < bi);
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.y + wid.z * nwg.y;
  if (row >= p.rows) { return; }
  let begin = wid.x * p.chunk;
  let end = min(begin + p.chunk, p.n);
  var bk = 0u;     // below every real key (the smallest, -inf's, is 0x007fffff)
  var bi = NONE;
  for (var j = begin + lid; j < end; j += ${WG}u) {
#if SOURCE_CAND
    let c = cand_in[row * p.n + j];
    let k = c.x;
    let i = c.y;
#else
    let k = value_key(p.x_off + row * p.n + j);
    let i = j;
#endif
    if (beats(k, i, bk, bi)) { bk = k; bi = i; }
  }
  best_key[lid] = bk;
  best_idx[lid] = bi;
  workgroupBarrier();
  for (var s = ${WG}u / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      let k = best_key[lid + s];
      let i = best_idx[lid + s];
      if (beats(k, i, best_key[lid], best_idx[lid])) {
        best_key[lid] = k;
        best_idx[lid] = i;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
#if OUT_INDEX
    out[p.out_off + row] = i32(best_idx[0]);
#else
    cand_out[row * p.chunks + wid.x] = vec2<u32>(best_key[0], best_idx[0]);
#endif
  }
}
