// The embeddings of one decode step: out[r, c] = tokens[fed[r], c] + positions[pos[r], c] (OPT's inputs_embeds +
// embed_positions, one dispatch instead of two gathers and an add), the fed tokens and position ids read from the
// decode state (decode_common). The token table may exceed the storage binding limit (OPT-2.7B's 50272 x 2560 f16
// table is 257 MB; lavapipe binds 128 MB): it is bound as up to 4 slices of whole rows. Ids outside the table
// read zeros. Defines: T (table type), P (position table type), PACKED (an f16 token table read as u32 pairs: no
// shader-f16 needed).

struct Params {
  n: u32,               // R * D
  d: u32,
  rows_per_slice: u32,
  vocab: u32,
  positions: u32,       // rows of the position table
  p_off: u32,
  out_off: u32,
  row_stride: u32,
  t_off: vec4<u32>,     // element offset of each slice's first row inside its binding
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> st: array<u32>;
#if PACKED
alias Word = u32;
#else
alias Word = ${T};
#endif
@group(0) @binding(2) var<storage, read> t0: array<Word>;
@group(0) @binding(3) var<storage, read> t1: array<Word>;
@group(0) @binding(4) var<storage, read> t2: array<Word>;
@group(0) @binding(5) var<storage, read> t3: array<Word>;
@group(0) @binding(6) var<storage, read> pos_table: array<${P}>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
#include decode_common

fn word(slice: u32, i: u32) -> Word {
  switch slice {
    case 0u: { return t0[i]; }
    case 1u: { return t1[i]; }
    case 2u: { return t2[i]; }
    default: { return t3[i]; }
  }
}

fn token_value(slice: u32, e: u32) -> f32 {
#if PACKED
  return unpack2x16float(word(slice, e >> 1u))[e & 1u];
#else
  return f32(word(slice, e));
#endif
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let r = i / p.d;
  let c = i - r * p.d;
  let id = bitcast<i32>(st[st[H_FED] + r]);
  var v = 0.0;
  if (id >= 0 && u32(id) < p.vocab) {
    let slice = u32(id) / p.rows_per_slice;
    let row = u32(id) - slice * p.rows_per_slice;
    v = token_value(slice, p.t_off[slice] + row * p.d + c);
  }
  let pid = bitcast<i32>(st[st[H_POS] + r]);
  if (pid >= 0 && u32(pid) < p.positions) { v += f32(pos_table[p.p_off + u32(pid) * p.d + c]); }
  out[p.out_off + i] = v;
}
