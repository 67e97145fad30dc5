// Gradient of a row gather (embedding): table_grad[ids[i], c] += dout[i, c]. One invocation per column walks
// the ids in order, so repeated ids (a batch of the same query tokens, a word used twice) sum without atomics
// and in a fixed order. Ids outside [0, V) are skipped, as the forward reads zeros for them.
// Defines: G (dout storage type).

struct Params {
  n: u32,     // ids
  d: u32,     // columns
  vocab: u32,
  i_off: u32,
  g_off: u32,
  t_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> dout: array<${G}>;
@group(0) @binding(3) var<storage, read_write> table: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= p.d) { return; }
  for (var i = 0u; i < p.n; i++) {
    let id = ids[p.i_off + i];
    if (id >= 0 && u32(id) < p.vocab) {
      let e = p.t_off + u32(id) * p.d + c;
      table[e] = table[e] + f32(dout[p.g_off + i * p.d + c]);
    }
  }
}
