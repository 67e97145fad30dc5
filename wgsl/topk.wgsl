// Row-wise top-k by radix select, one workgroup per (row, chunk). Order: larger value first, equal values by
// lower index (NaN above +Infinity, -0 equal to +0). Each element gets a unique 64-bit composite
// (hi = order-preserving key of its value bits, lo = ~index); the k largest composites are the answer.
// Up to 8 passes pick the k-th largest composite one byte at a time (a 256-bin histogram of the elements
// that still share the chosen prefix; suffix sums over the bins find the byte); the loop stops as soon as a byte's bin
// is taken whole. A last pass gathers the k winners into workgroup memory and ranks them (k^2 compares).
// Pass 1 (values of x) can write per-chunk winners as candidates (cand_out); pass 2 selects among them
// (SOURCE_CAND). Final outputs: values as f32 bits (read back from x, so exact) and i32 indices.
// Defines: HALF (x holds binary16 pairs; x is bound as u32 words), SOURCE_CAND, OUT_CAND (pass 1 of two), KMAX.

struct Params {
  n: u32,        // elements per row of the source (values, or candidates in pass 2)
  chunk: u32,    // elements per workgroup
  chunks: u32,   // workgroups per row
  k: u32,
  x_off: u32,    // element offset of x
  width: u32,    // row length of x (to read the final values)
  vals_off: u32,
  idx_off: u32,
  rows: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
#if SOURCE_CAND
@group(0) @binding(2) var<storage, read> cand_in: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> values: array<u32>;
@group(0) @binding(4) var<storage, read_write> indices: array<i32>;
#elif OUT_CAND
@group(0) @binding(2) var<storage, read_write> cand_out: array<vec2<u32>>;
#else
@group(0) @binding(2) var<storage, read_write> values: array<u32>;
@group(0) @binding(3) var<storage, read_write> indices: array<i32>;
#endif

const WG = 256u;   // also the number of histogram bins
const NONE = 0xffffffffu;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> counts: array<u32, 256>;
var<workgroup> group_sum: array<u32, 16>;
var<workgroup> prefix_hi: u32;
var<workgroup> prefix_lo: u32;
var<workgroup> mask_hi: u32;
var<workgroup> mask_lo: u32;
var<workgroup> remaining: u32;
var<workgroup> done: u32;
var<workgroup> taken: atomic<u32>;
var<workgroup> sel_hi: array<u32, ${KMAX}>;
var<workgroup> sel_lo: array<u32, ${KMAX}>;

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

fn half_bits(e: u32) -> u32 {
  return (x[e >> 1u] >> ((e & 1u) * 16u)) & 0xffffu;
}

fn value_key(e: u32) -> u32 {
#if HALF
  return key_f16(half_bits(e));
#else
  return key_f32(x[e]);
#endif
}

/** f32 bits of x's element e. */
fn value_bits(e: u32) -> u32 {
#if HALF
  return bitcast<u32>(unpack2x16float(half_bits(e)).x);
#else
  return x[e];
#endif
}

/** (hi, lo) composite of element j of this workgroup's slice; lo = 0 marks an empty candidate slot. */
fn composite(row: u32, j: u32) -> vec2<u32> {
#if SOURCE_CAND
  let c = cand_in[row * p.n + j];
  return vec2<u32>(c.x, select(~c.y, 0u, c.y == NONE));
#else
  let i = row * p.n + j;
  return vec2<u32>(value_key(p.x_off + i), ~j);
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.y + wid.z * nwg.y;
  if (row >= p.rows) { return; }
  let begin = wid.x * p.chunk;
  let end = min(begin + p.chunk, p.n);
  let kk = min(p.k, end - begin);
  if (lid == 0u) {
    prefix_hi = 0u;
    prefix_lo = 0u;
    mask_hi = 0u;
    mask_lo = 0u;
    remaining = kk;
    done = select(0u, 1u, kk == end - begin); // everything is taken
    atomicStore(&taken, 0u);
  }

  for (var level = 0u; level < 8u; level++) {
    if (workgroupUniformLoad(&done) != 0u) { break; }
    let ph = prefix_hi;
    let pl = prefix_lo;
    let mh = mask_hi;
    let ml = mask_lo;
    let rem = remaining;
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    let shift = 24u - 8u * (level & 3u);
    let low_word = level >= 4u;
    for (var j = begin + lid; j < end; j += WG) {
      let c = composite(row, j);
      if (c.y != 0u && (c.x & mh) == ph && (c.y & ml) == pl) {
        let w = select(c.x, c.y, low_word);
        atomicAdd(&hist[(w >> shift) & 0xffu], 1u);
      }
    }
    workgroupBarrier();
    // Candidates in bins lid..255, from 16 group sums: three barriers instead of a log-step scan's sixteen.
    counts[lid] = atomicLoad(&hist[lid]);
    workgroupBarrier();
    if (lid < 16u) {
      var g = 0u;
      for (var b = lid * 16u; b < lid * 16u + 16u; b++) { g += counts[b]; }
      group_sum[lid] = g;
    }
    workgroupBarrier();
    let group = lid / 16u;
    var at_or_above = 0u;
    for (var g = group + 1u; g < 16u; g++) { at_or_above += group_sum[g]; }
    for (var b = lid; b < group * 16u + 16u; b++) { at_or_above += counts[b]; }
    let above = at_or_above - counts[lid];
    if (above < rem && rem <= at_or_above) {
      // The rem-th largest candidate has byte `lid` here: extend the prefix with it.
      if (low_word) {
        prefix_lo = pl | (lid << shift);
        mask_lo = ml | (0xffu << shift);
      } else {
        prefix_hi = ph | (lid << shift);
        mask_hi = mh | (0xffu << shift);
      }
      if (at_or_above == rem) { done = 1u; } else { remaining = rem - above; }
    }
  }
  workgroupBarrier();

  // Everything at or above the chosen prefix is in: exactly kk elements.
  let ph = prefix_hi;
  let pl = prefix_lo;
  let mh = mask_hi;
  let ml = mask_lo;
  for (var j = begin + lid; j < end; j += WG) {
    let c = composite(row, j);
    let h = c.x & mh;
    if (c.y != 0u && (h > ph || (h == ph && (c.y & ml) >= pl))) {
      let slot = atomicAdd(&taken, 1u);
      if (slot < ${KMAX}u) {
        sel_hi[slot] = c.x;
        sel_lo[slot] = c.y;
      }
    }
  }
  workgroupBarrier();

  for (var i = lid; i < p.k; i += WG) {
    if (i >= kk) {
#if OUT_CAND
      cand_out[(row * p.chunks + wid.x) * p.k + i] = vec2<u32>(0u, NONE); // a chunk shorter than k
#endif
      continue;
    }
    let hi = sel_hi[i];
    let lo = sel_lo[i];
    var rank = 0u;
    for (var j = 0u; j < kk; j++) {
      let oh = sel_hi[j];
      if (oh > hi || (oh == hi && sel_lo[j] > lo)) { rank++; }
    }
    let index = ~lo;
#if OUT_CAND
    cand_out[(row * p.chunks + wid.x) * p.k + rank] = vec2<u32>(hi, index);
#else
    let o = row * p.k + rank;
    values[p.vals_off + o] = value_bits(p.x_off + row * p.width + index);
    indices[p.idx_off + o] = i32(index);
#endif
  }
}
