// Row gather: out[k, c] = table[ids[k], c], for the ids that fall in this dispatch's slice of the table
// (rows row_begin .. row_end-1, bound alone because a whole table may exceed the storage binding limit).
// Ids outside [0, vocab) read nothing: the dispatch with zero_invalid = 1 writes zeros for them.
// Defines: T (table type), OUT (output type), PACKED (an f16 table read as u32 pairs: no shader-f16 needed).

struct Params {
  n: u32,        // ids * d
  d: u32,
  ids_off: u32,
  t_off: u32,    // element offset of row row_begin inside the table binding
  row_begin: u32,
  row_end: u32,
  vocab: u32,
  out_off: u32,
  row_stride: u32,
  zero_invalid: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
#if PACKED
@group(0) @binding(2) var<storage, read> table: array<u32>;
fn load(e: u32) -> f32 {
  return unpack2x16float(table[e >> 1u])[e & 1u];
}
#else
@group(0) @binding(2) var<storage, read> table: array<${T}>;
fn load(e: u32) -> ${T} {
  return table[e];
}
#endif
@group(0) @binding(3) var<storage, read_write> out: array<${OUT}>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x + gid.y * p.row_stride;
  if (i >= p.n) { return; }
  let k = i / p.d;
  let c = i - k * p.d;
  let id = ids[p.ids_off + k];
  // Negative ids become huge as u32, so one comparison per bound covers them.
  let row = u32(id);
  if (id >= 0 && row >= p.row_begin && row < p.row_end) {
    out[p.out_off + i] = ${OUT}(load(p.t_off + (row - p.row_begin) * p.d + c));
  } else if (p.zero_invalid == 1u && (id < 0 || row >= p.vocab)) {
    out[p.out_off + i] = ${OUT}(0.0);
  }
}
