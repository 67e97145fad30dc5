// Attention for software adapters with 8-lane subgroups (lavapipe), for calls with many queries (the
// vision model, the Q-Former, prefill): like attention_rows, one invocation owns one query row and its
// whole online softmax, but the 8 lanes of a subgroup are 8 queries of the same head and share each key
// and value row instead of each loading it.
//
// Why: Mesa 25's llvmpipe loads storage one lane and one 32-bit word at a time, even when all lanes ask
// for the same address, so in attention_rows every lane pays for the whole K and V row. Here lane L
// loads only the vec4s L, L + 8, ... of the row and subgroupBroadcast hands them to the other lanes (a
// register shuffle): an eighth of the loads.
//
// Grid: x = ceil(lq / WG) blocks of WG queries, y = heads, z = batch. Queries past lq repeat the last
// one and store nothing (every lane must take part in the broadcasts).
// Defines (beyond attention_common, which must have VEC4): WG (a multiple of 8), NC (vec4 chunks of 8
// lanes per head row: ceil(head_dim / 32)).

#include attention_common

const LANES: u32 = 8u;

// Lane `lane`'s vec4 of chunk c of the row starting at vec4 index base (clamped into the head: the lanes
// past the head's end read its last vec4, which the zero-padded query and the unstored tail ignore).
fn lane_k(base: u32, c: u32, lane: u32, groups: u32) -> vec4<f32> {
  return vec4<f32>(k[base + min(c * LANES + lane, groups - 1u)]);
}

fn lane_v(base: u32, c: u32, lane: u32, groups: u32) -> vec4<f32> {
  return vec4<f32>(v[base + min(c * LANES + lane, groups - 1u)]);
}

// Sum over the 8 lanes' vec4s of chunk c: q's vec4s (8c .. 8c + 7) dotted with the broadcast ones.
fn chunk_dot(qc: array<vec4<f32>, 8>, x: vec4<f32>) -> f32 {
  let s = dot(qc[0], subgroupBroadcast(x, 0u)) + dot(qc[1], subgroupBroadcast(x, 1u)) +
          dot(qc[2], subgroupBroadcast(x, 2u)) + dot(qc[3], subgroupBroadcast(x, 3u));
  let t = dot(qc[4], subgroupBroadcast(x, 4u)) + dot(qc[5], subgroupBroadcast(x, 5u)) +
          dot(qc[6], subgroupBroadcast(x, 6u)) + dot(qc[7], subgroupBroadcast(x, 7u));
  return s + t;
}

@compute @workgroup_size(${WG})
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
  @builtin(subgroup_invocation_id) lane: u32,
) {
  let b = wid.z;
  let h = wid.y;
  let q0 = wid.x * ${WG}u;
  let own = q0 + li < p.lq;
  let i = min(q0 + li, p.lq - 1u);
  let d = p.head_dim;
  let groups = d / 4u;

  // The query, pre-scaled and zero past head_dim, as NC chunks of 8 vec4s.
  var qr: array<array<vec4<f32>, 8>, ${NC}>;
  let q_base = q_index(b, i, h) / 4u;
  for (var c = 0u; c < ${NC}u; c++) {
    for (var e = 0u; e < LANES; e++) {
      let g = c * LANES + e;
      if (g < groups) { qr[c][e] = vec4<f32>(q[q_base + g]) * p.scale; }
    }
  }

  // Keys are walked up to the last one any query of the workgroup sees (uniform: the broadcasts need every
  // lane); a query skips the ones past its own end.
  let own_end = visible_end(i);
  let end = visible_end(min(q0 + ${WG}u - 1u, p.lq - 1u));
  var acc: array<array<vec4<f32>, 8>, ${NC}>;
  var m = FLOOR;
  var l = 0.0;
  for (var j = 0u; j < end; j++) {
    let k_base = k_index(b, j, h) / 4u;
    var dot_qk = 0.0;
    for (var c = 0u; c < ${NC}u; c++) {
      dot_qk += chunk_dot(qr[c], lane_k(k_base, c, lane, groups));
    }
    let s = select(EXCLUDED, masked_score(dot_qk, b, j), j < own_end);
    if (s > m) {
      let alpha = exp_precise(m - s);
      l *= alpha;
      for (var c = 0u; c < ${NC}u; c++) {
        for (var e = 0u; e < LANES; e++) { acc[c][e] *= alpha; }
      }
      m = s;
    }
    let w = exp_precise(s - m);
    l += w;
    let v_base = v_index(b, j, h) / 4u;
    for (var c = 0u; c < ${NC}u; c++) {
      let x = lane_v(v_base, c, lane, groups);
      acc[c][0] += w * subgroupBroadcast(x, 0u);
      acc[c][1] += w * subgroupBroadcast(x, 1u);
      acc[c][2] += w * subgroupBroadcast(x, 2u);
      acc[c][3] += w * subgroupBroadcast(x, 3u);
      acc[c][4] += w * subgroupBroadcast(x, 4u);
      acc[c][5] += w * subgroupBroadcast(x, 5u);
      acc[c][6] += w * subgroupBroadcast(x, 6u);
      acc[c][7] += w * subgroupBroadcast(x, 7u);
    }
  }

  if (own) {
    save_lse((b * p.lq + i) * p.heads + h, m, l);
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let o_base = p.o_off + ((b * p.lq + i) * p.heads + h) * d;
    for (var e = 0u; e < d; e++) {
      out[o_base + e] = ${OT}(acc[e / 32u][(e / 4u) % LANES][e % 4u] * inv);
    }
  }
}
